//! Fuzz target `checkpoint`: see `bluejet_fuzz::checkpoint_file` for the calls and the properties checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bluejet_fuzz::checkpoint_file(data);
});
