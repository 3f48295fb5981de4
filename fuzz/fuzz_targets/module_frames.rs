#![no_main]
// See mixop::fuzzing::module_frames for what is fed and why.
libfuzzer_sys::fuzz_target!(|data: &[u8]| mixop::fuzzing::module_frames(data));
