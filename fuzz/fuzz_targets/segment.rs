//! Fuzz target `segment`: see `bluejet_fuzz::segment` for the calls and the properties checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bluejet_fuzz::segment(data);
});
