//! The `Proxy-Authenticate` challenge sent with every 407.

/// `Basic realm="<realm>", charset="UTF-8"`.
///
/// RFC 7617 section 2 defines the realm parameter and section 2.1 the charset
/// one; UTF-8 is the only charset it allows, and announcing it tells clients
/// how to encode non-ASCII user names and passwords.
pub fn basic(realm: &str) -> String {
    format!("Basic realm={}, charset=\"UTF-8\"", quoted_string(realm))
}

/// RFC 9110 section 5.6.4: inside a quoted-string, `"` and `\` must be sent as
/// a quoted-pair. Control characters cannot be sent at all; the config refuses
/// a realm holding one, so none reaches here.
fn quoted_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realm_is_quoted_and_escaped() {
        let table = [
            ("proxy", r#"Basic realm="proxy", charset="UTF-8""#),
            ("", r#"Basic realm="", charset="UTF-8""#),
            (
                r#"say "hi""#,
                r#"Basic realm="say \"hi\"", charset="UTF-8""#,
            ),
            (r"C:\proxy", r#"Basic realm="C:\\proxy", charset="UTF-8""#),
            (
                "Zürich, 2nd floor",
                r#"Basic realm="Zürich, 2nd floor", charset="UTF-8""#,
            ),
        ];
        for (realm, want) in table {
            assert_eq!(basic(realm), want);
        }
    }
}
