#![no_main]
// See mixop::fuzzing::winrm_frames for what is fed and why.
libfuzzer_sys::fuzz_target!(|data: &[u8]| mixop::fuzzing::winrm_frames(data));
