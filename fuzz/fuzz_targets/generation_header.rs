//! Fuzz target `generation_header`: see `bluejet_fuzz::generation_header` for the calls and the properties checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bluejet_fuzz::generation_header(data);
});
