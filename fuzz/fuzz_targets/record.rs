//! Fuzz target `record`: see `bluejet_fuzz::record_stream` for the calls and the properties checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bluejet_fuzz::record_stream(data);
});
