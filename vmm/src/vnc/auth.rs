//! VNC authentication (RFB security type 2): DES of a 16-byte challenge, keyed by the first
//! eight bytes of the password with each byte's bits mirrored (a quirk of the original code
//! that every client reproduces).

use des::cipher::generic_array::GenericArray;
use des::cipher::{BlockEncrypt, KeyInit};

/// The response a client holding `password` gives to `challenge`.
pub fn response(password: &[u8], challenge: &[u8; 16]) -> [u8; 16] {
    let mut key = [0u8; 8];
    for (k, p) in key.iter_mut().zip(password.iter()) {
        *k = p.reverse_bits();
    }
    let cipher = des::Des::new(GenericArray::from_slice(&key));
    let mut out = *challenge;
    for block in out.chunks_exact_mut(8) {
        cipher.encrypt_block(GenericArray::from_mut_slice(block));
    }
    out
}

/// Checks a client's answer in constant time.
pub fn verify(password: &[u8], challenge: &[u8; 16], answer: &[u8; 16]) -> bool {
    let want = response(password, challenge);
    want.iter()
        .zip(answer.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// 16 random bytes from the kernel, by getrandom(2): the client threads' seccomp filter
/// allows no file opens.
pub fn challenge() -> std::io::Result<[u8; 16]> {
    let mut c = [0u8; 16];
    crate::random::fill(&mut c)?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn des_known_answer() {
        // FIPS 81 / classic DES test vector: key 0123456789ABCDEF, plaintext
        // "Now is t" (4E6F772069732074) gives 3FA40E8A984D4815. The VNC key quirk mirrors
        // each key byte, so feed the mirrored key as the "password".
        let key: Vec<u8> = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]
            .iter()
            .map(|b: &u8| b.reverse_bits())
            .collect();
        let mut challenge = [0u8; 16];
        challenge[..8].copy_from_slice(&[0x4e, 0x6f, 0x77, 0x20, 0x69, 0x73, 0x20, 0x74]);
        challenge[8..].copy_from_slice(&[0x4e, 0x6f, 0x77, 0x20, 0x69, 0x73, 0x20, 0x74]);
        let r = response(&key, &challenge);
        assert_eq!(&r[..8], &[0x3f, 0xa4, 0x0e, 0x8a, 0x98, 0x4d, 0x48, 0x15]);
        assert_eq!(&r[8..], &r[..8]);
        assert!(verify(&key, &challenge, &r));
        let mut bad = r;
        bad[15] ^= 1;
        assert!(!verify(&key, &challenge, &bad));
    }
}
