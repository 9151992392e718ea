//! Fuzz target `db_open`: see `bluejet_fuzz::db_open` for the calls and the properties checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bluejet_fuzz::db_open(data);
});
