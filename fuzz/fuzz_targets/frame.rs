//! Fuzz target `frame`: see `bluejet_fuzz::frame_stream` for the calls and the properties checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bluejet_fuzz::frame_stream(data);
});
