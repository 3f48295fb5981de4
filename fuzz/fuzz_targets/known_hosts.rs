#![no_main]
// See mixop::fuzzing::known_hosts for what is fed and why.
libfuzzer_sys::fuzz_target!(|data: &[u8]| mixop::fuzzing::known_hosts(data));
