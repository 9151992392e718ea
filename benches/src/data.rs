//! The bytes every benchmark writes: pseudo-random, so no layer below can compress or skip them.

/// Size of one record value: a 1 KiB message.
pub const VALUE_BYTES: usize = 1024;

/// `length` pseudo-random bytes (xorshift64, fixed seed).
pub fn noise(length: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}
