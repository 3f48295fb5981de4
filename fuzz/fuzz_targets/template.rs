#![no_main]
// See mixop::fuzzing::template for what is fed and why.
libfuzzer_sys::fuzz_target!(|data: &[u8]| mixop::fuzzing::template(data));
