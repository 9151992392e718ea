//! Node names: each node's certificate carries its name as a DNS name, and a peer is
//! authenticated by checking that name, so a name must be a plain DNS label that no two
//! spellings can confuse.

use rustls::pki_types::DnsName;

/// The longest node name: the longest DNS label.
pub const MAX_NODE_NAME: usize = 63;

/// Why a node name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeNameError {
    /// The name is empty.
    #[error("a node name may not be empty")]
    Empty,
    /// The name is longer than a DNS label.
    #[error("node name {name:?} is longer than {MAX_NODE_NAME} characters")]
    TooLong {
        /// The name refused.
        name: String,
    },
    /// The name has a character other than ASCII letters, digits, '-' and '_'.
    #[error("node name {name:?} may only hold ASCII letters, digits, '-' and '_'")]
    BadCharacter {
        /// The name refused.
        name: String,
    },
    /// The name is not a valid DNS name (for example, it starts with '-').
    #[error("node name {name:?} is not a valid DNS name")]
    NotDnsName {
        /// The name refused.
        name: String,
    },
}

/// Checks that `name` can be a node's certificate name.
pub fn check_node_name(name: &str) -> Result<(), NodeNameError> {
    let owned = || name.to_owned();
    if name.is_empty() {
        return Err(NodeNameError::Empty);
    }
    if name.len() > MAX_NODE_NAME {
        return Err(NodeNameError::TooLong { name: owned() });
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if !name.chars().all(allowed) {
        return Err(NodeNameError::BadCharacter { name: owned() });
    }
    // What certificate verification will check the name as; refuse here what it would refuse.
    DnsName::try_from(name).map_err(|_| NodeNameError::NotDnsName { name: owned() })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_labels_pass_and_others_are_refused() {
        for good in ["a", "node-1", "mx_2", "A9", &"x".repeat(63)] {
            assert_eq!(check_node_name(good), Ok(()), "{good}");
        }
        assert_eq!(check_node_name(""), Err(NodeNameError::Empty));
        let long = "x".repeat(64);
        assert!(matches!(
            check_node_name(&long),
            Err(NodeNameError::TooLong { .. })
        ));
        for bad in ["a.b", "a b", "é", "a/b", "../a", "a\0"] {
            assert!(
                matches!(
                    check_node_name(bad),
                    Err(NodeNameError::BadCharacter { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            check_node_name("-a"),
            Err(NodeNameError::NotDnsName { .. })
        ));
    }
}
