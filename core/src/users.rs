//! The configured users and the check of a presented user name and password.

use std::collections::HashMap;

use crate::hash::PasswordHash;
use crate::htpasswd::Entry;

/// What a check of a user name and password found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Index of the user, for `UserDb::name`.
    Valid(usize),
    UnknownUser,
    WrongPassword,
}

#[derive(Debug)]
pub struct UserDb {
    names: Vec<String>,
    hashes: Vec<PasswordHash>,
    by_name: HashMap<Box<[u8]>, usize>,
    // Verified against when the user is unknown, so that an unknown user costs
    // what a wrong password costs and timing does not tell which users exist.
    decoy: usize,
    /// How many hashes were verified, decoys included: lets tests see work
    /// that is otherwise visible only as time.
    #[cfg(test)]
    pub verifications: std::cell::Cell<usize>,
}

impl UserDb {
    /// `entries` comes from `htpasswd::parse`, which refuses duplicates and
    /// empty lists; `None` if it is empty all the same.
    pub fn new(entries: Vec<Entry>) -> Option<Self> {
        let mut names = Vec::with_capacity(entries.len());
        let mut hashes = Vec::with_capacity(entries.len());
        let mut by_name = HashMap::with_capacity(entries.len());
        for entry in entries {
            by_name.insert(entry.user.as_bytes().into(), names.len());
            names.push(entry.user);
            hashes.push(entry.hash);
        }
        // The costliest hash: an unknown user then never answers faster than a
        // wrong password for any user.
        let decoy = (0..hashes.len()).max_by_key(|&i| hashes[i].cost())?;
        Some(Self {
            names,
            hashes,
            by_name,
            decoy,
            #[cfg(test)]
            verifications: std::cell::Cell::new(0),
        })
    }

    /// Whether `user` is one of the configured users.
    pub fn contains(&self, user: &[u8]) -> bool {
        self.by_name.contains_key(user)
    }

    pub fn check(&self, user: &[u8], password: &[u8]) -> Check {
        #[cfg(test)]
        self.verifications.set(self.verifications.get() + 1);
        match self.by_name.get(user) {
            Some(&index) if self.hashes[index].verify(password) => Check::Valid(index),
            Some(_) => Check::WrongPassword,
            None => {
                // The result does not matter, only the work.
                let _ = std::hint::black_box(self.hashes[self.decoy].verify(password));
                Check::UnknownUser
            }
        }
    }

    pub fn name(&self, index: usize) -> &str {
        self.names.get(index).map_or("", String::as_str)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::htpasswd;

    fn db(text: &str) -> UserDb {
        UserDb::new(htpasswd::parse(text).unwrap()).unwrap()
    }

    #[test]
    fn right_password_names_the_user() {
        let users = db("alice:{PLAIN}wonder\nbob:{PLAIN}builder\n");
        let Check::Valid(i) = users.check(b"bob", b"builder") else {
            panic!("bob refused");
        };
        assert_eq!(users.name(i), "bob");
    }

    #[test]
    fn wrong_password_and_unknown_user_are_told_apart_for_counters() {
        let users = db("alice:{PLAIN}wonder\n");
        assert_eq!(users.check(b"alice", b"Wonder"), Check::WrongPassword);
        assert_eq!(users.check(b"alice", b""), Check::WrongPassword);
        assert_eq!(users.check(b"mallory", b"wonder"), Check::UnknownUser);
        assert_eq!(users.check(b"", b"wonder"), Check::UnknownUser);
    }

    #[test]
    fn user_names_are_matched_as_exact_octets() {
        let users = db("j\u{fc}rgen:{PLAIN}pw\n");
        assert!(matches!(
            users.check("jürgen".as_bytes(), b"pw"),
            Check::Valid(_)
        ));
        assert_eq!(users.check(b"j\xfcrgen", b"pw"), Check::UnknownUser);
        assert_eq!(users.check("JÜRGEN".as_bytes(), b"pw"), Check::UnknownUser);
    }

    #[test]
    fn every_check_verifies_one_hash_known_user_or_not() {
        let users = db("alice:{PLAIN}wonder\n");
        users.check(b"alice", b"wonder");
        users.check(b"alice", b"x");
        users.check(b"mallory", b"x");
        assert_eq!(users.verifications.get(), 3);
    }

    #[test]
    fn decoy_is_the_costliest_hash() {
        // {SHA} and bcrypt cost 4 of "x", made with Python hashlib and bcrypt: the bcrypt one must be the decoy.
        let users = db(concat!(
            "cheap:{SHA}EfatjsUqKYSrqv18O1FlA3hcIHI=\n",
            "dear:$2y$04$AGnoDY8mcufbfMslhzFc7O6V.b/imZRj/SmMR9sIswkdb6RFvDHA6\n",
        ));
        assert_eq!(users.name(users.decoy), "dear");
    }
}
