//! Fuzz target `page_decode`: see `bluejet_fuzz::page_decode` for the calls and the properties checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bluejet_fuzz::page_decode(data);
});
