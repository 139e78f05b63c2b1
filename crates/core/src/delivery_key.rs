//! A delivery's idempotency key, made from its row number by a keyed permutation.
//!
//! The contract's key is a random UUID v4: a receiver dedupes on it and may learn nothing from
//! it. Storing one per delivery cost a 37-byte column and a 45-byte unique index entry, about a
//! seventh of what a delivered chat message took on disk, and the index was written on every
//! event. Instead the key is the row's sequence number (unique, never reused) put through a
//! permutation of the 122 free bits of a UUID v4, keyed by a secret of the installation: a
//! bijection, so keys are unique; keyed, so without the secret they are as unguessable and
//! unordered as random ones; invertible, so a key names its row without an index.
//!
//! The permutation is a balanced Feistel network of 61-bit halves with SipHash-2-4 as its round
//! function (a keyed PRF), eight rounds: four already make a pseudorandom permutation
//! (Luby–Rackoff), and a key costs well under a microsecond.

use siphasher::sip::SipHasher24;
use std::hash::Hasher;
use uuid::Uuid;

const HALF_BITS: u32 = 61;
const HALF_MASK: u64 = (1 << HALF_BITS) - 1;
const ROUNDS: u8 = 8;

/// Makes keys from row numbers and row numbers from keys, with one installation's secret.
#[derive(Clone, Copy)]
pub struct DeliveryKeyCipher {
    secret: [u8; 16],
}

impl std::fmt::Debug for DeliveryKeyCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeliveryKeyCipher(..)")
    }
}

impl DeliveryKeyCipher {
    pub const SECRET_LEN: usize = 16;

    pub fn new(secret: [u8; Self::SECRET_LEN]) -> Self {
        DeliveryKeyCipher { secret }
    }

    /// The key of the delivery stored as row `seq` (a positive row number).
    pub fn key(&self, seq: i64) -> String {
        let permuted = self.permute(u128::from(seq.unsigned_abs()));
        Uuid::from_u128(into_uuid_bits(permuted))
            .hyphenated()
            .to_string()
    }

    /// The row number whose key is `key`, or `None` if no row can have it (not a UUID v4, or
    /// made with another secret, or an older stored key).
    pub fn seq(&self, key: &str) -> Option<i64> {
        let uuid = Uuid::parse_str(key).ok()?;
        if uuid.get_version_num() != 4 || uuid.get_variant() != uuid::Variant::RFC4122 {
            return None;
        }
        let value = self.unpermute(from_uuid_bits(uuid.as_u128()));
        i64::try_from(value).ok().filter(|seq| *seq > 0)
    }

    /// The Feistel network over a 122-bit value.
    fn permute(&self, value: u128) -> u128 {
        let (mut left, mut right) = halves(value);
        for round in 0..ROUNDS {
            let mixed = left ^ self.round(round, right);
            left = right;
            right = mixed;
        }
        joined(left, right)
    }

    /// `permute`'s inverse.
    fn unpermute(&self, value: u128) -> u128 {
        let (mut left, mut right) = halves(value);
        for round in (0..ROUNDS).rev() {
            let mixed = right ^ self.round(round, left);
            right = left;
            left = mixed;
        }
        joined(left, right)
    }

    fn round(&self, round: u8, half: u64) -> u64 {
        let mut hasher = SipHasher24::new_with_key(&self.secret);
        hasher.write_u8(round);
        hasher.write_u64(half);
        hasher.finish() & HALF_MASK
    }
}

fn halves(value: u128) -> (u64, u64) {
    ((value >> HALF_BITS) as u64, value as u64 & HALF_MASK)
}

fn joined(left: u64, right: u64) -> u128 {
    (u128::from(left) << HALF_BITS) | u128::from(right)
}

/// Bits of a UUID v4 that are not its version (4 bits at 76) or variant (2 bits at 62).
const LOW_BITS: u32 = 62;
const MIDDLE_BITS: u32 = 12;

/// Spreads a 122-bit value over a UUID's free bits and sets version 4 and the RFC 4122 variant.
fn into_uuid_bits(value: u128) -> u128 {
    let low = value & ((1 << LOW_BITS) - 1);
    let middle = (value >> LOW_BITS) & ((1 << MIDDLE_BITS) - 1);
    let high = value >> (LOW_BITS + MIDDLE_BITS);
    (high << 80) | (0x4 << 76) | (middle << 64) | (0b10 << 62) | low
}

/// The 122-bit value `into_uuid_bits` spread.
fn from_uuid_bits(bits: u128) -> u128 {
    let low = bits & ((1 << LOW_BITS) - 1);
    let middle = (bits >> 64) & ((1 << MIDDLE_BITS) - 1);
    let high = bits >> 80;
    (high << (LOW_BITS + MIDDLE_BITS)) | (middle << LOW_BITS) | low
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cipher(byte: u8) -> DeliveryKeyCipher {
        DeliveryKeyCipher::new([byte; 16])
    }

    #[test]
    fn keys_are_uuid_v4_and_name_their_row() {
        let keys = cipher(7);
        for seq in [1, 2, 3, 1_000_000, i64::MAX] {
            let key = keys.key(seq);
            let uuid = Uuid::parse_str(&key).unwrap();
            assert_eq!(uuid.get_version_num(), 4);
            assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122);
            assert_eq!(key, uuid.hyphenated().to_string(), "lower-case, hyphenated");
            assert_eq!(keys.seq(&key), Some(seq));
            assert_eq!(keys.seq(&key.to_uppercase()), Some(seq));
        }
    }

    #[test]
    fn consecutive_rows_have_unrelated_keys_and_secrets_differ() {
        let (one, two) = (cipher(1), cipher(2));
        let first = Uuid::parse_str(&one.key(1)).unwrap().as_u128();
        let next = Uuid::parse_str(&one.key(2)).unwrap().as_u128();
        // About half of the 122 free bits differ between neighbours, as between random keys.
        let differing = (first ^ next).count_ones();
        assert!((35..=90).contains(&differing), "{differing} bits differ");
        assert_ne!(one.key(1), two.key(1));
        assert_eq!(two.seq(&one.key(1)).filter(|seq| *seq == 1), None);
    }

    #[test]
    fn keys_that_name_no_row_are_refused() {
        let keys = cipher(3);
        assert_eq!(keys.seq("not-a-key"), None);
        // Version 7 and a non-RFC variant are not keys this cipher makes.
        assert_eq!(keys.seq("017f22e2-79b0-7cc3-98c4-dc0c0c07398f"), None);
        assert_eq!(keys.seq("6ba7b810-9dad-41d1-c0b4-00c04fd430c8"), None);
        // Row numbers are positive: the key of 0 names no row.
        let zero = Uuid::from_u128(into_uuid_bits(keys.permute(0))).to_string();
        assert_eq!(keys.seq(&zero), None);
    }

    proptest! {
        #[test]
        fn every_row_number_round_trips(seq in 1i64..=i64::MAX, secret in any::<[u8; 16]>()) {
            let keys = DeliveryKeyCipher::new(secret);
            prop_assert_eq!(keys.seq(&keys.key(seq)), Some(seq));
        }

        #[test]
        fn uuid_bits_round_trip(value in 0u128..(1 << 122)) {
            prop_assert_eq!(from_uuid_bits(into_uuid_bits(value)), value);
        }
    }
}
