//! Fuzz target `generation_scan`: see `bluejet_fuzz::generation_scan` for the calls and the properties checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bluejet_fuzz::generation_scan(data);
});
