//! The Key Vault secret-name rule, `^[0-9A-Za-z-]{1,127}$`, written once for the host: the
//! run policy, the local vault and the audit log all ask here. (The component checks the
//! same rule in `guest/src/rules.rs` before it sends anything.)

/// The longest name, in characters.
pub const MAX_LEN: usize = 127;

/// Whether `name` is a valid secret name.
pub fn is_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_rule() {
        assert!(super::is_valid("db-password"));
        assert!(super::is_valid(&"a".repeat(127)));
        assert!(!super::is_valid(&"a".repeat(128)));
        for bad in ["", "a_b", "a/b", "a.b", "ä", "a b", "%2F"] {
            assert!(!super::is_valid(bad), "{bad}");
        }
    }
}
