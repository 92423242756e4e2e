//! The JAAS login configuration file Apache's server reads for SASL
//! (`-Djava.security.auth.login.config=jaas.conf`): sections of login
//! modules with options. This server takes the users of
//! `org.apache.zookeeper.server.auth.DigestLoginModule` in its section
//! (`Server` by default): `user_<name>="<password>"`.
//!
//! ```text
//! Server {
//!     org.apache.zookeeper.server.auth.DigestLoginModule required
//!     user_super="adminsecret"
//!     user_bob="bobsecret";
//! };
//! ```

use std::collections::BTreeMap;

/// One login module entry of a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Module {
    /// Its class name.
    pub(crate) class: String,
    /// `key=value` options.
    pub(crate) options: Vec<(String, String)>,
}

fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_quote = false;
    while let Some(c) = chars.next() {
        if in_quote {
            out.push(c);
            if c == '"' {
                in_quote = false;
            }
            continue;
        }
        match (c, chars.peek()) {
            ('"', _) => {
                in_quote = true;
                out.push(c);
            }
            ('/', Some('/')) => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            ('/', Some('*')) => {
                chars.next();
                let mut last = ' ';
                for c in chars.by_ref() {
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
                out.push(' ');
            }
            _ => out.push(c),
        }
    }
    out
}

/// Splits into words, `{`, `}`, `;`, `=` and quoted strings (quotes kept
/// off, marked by the bool).
fn tokens(text: &str) -> Result<Vec<(String, bool)>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if matches!(c, '{' | '}' | ';' | '=') {
            out.push((c.to_string(), false));
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => {
                        if let Some(n) = chars.next() {
                            s.push(n)
                        }
                    }
                    Some(c) => s.push(c),
                    None => return Err("a quoted value is not closed".into()),
                }
            }
            out.push((s, true));
        } else {
            let mut s = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || matches!(c, '{' | '}' | ';' | '=' | '"') {
                    break;
                }
                s.push(c);
                chars.next();
            }
            out.push((s, false));
        }
    }
    Ok(out)
}

/// The modules of section `name`.
///
/// # Errors
/// A message when the file is not a JAAS configuration or has no such
/// section.
pub(crate) fn section(text: &str, name: &str) -> Result<Vec<Module>, String> {
    let toks = tokens(&strip_comments(text))?;
    let mut i = 0;
    let at = |i: usize| toks.get(i).map(|(t, q)| (t.as_str(), *q));
    while i < toks.len() {
        let Some((sec, false)) = at(i) else { return Err("expected a section name".into()) };
        if at(i + 1) != Some(("{", false)) {
            return Err(format!("expected '{{' after {sec}"));
        }
        i += 2;
        let mut modules = Vec::new();
        loop {
            match at(i) {
                Some(("}", false)) => {
                    i += 1;
                    break;
                }
                Some((class, false)) => {
                    let Some((_flag, false)) = at(i + 1) else {
                        return Err(format!("{class}: expected required, requisite, sufficient or optional"));
                    };
                    i += 2;
                    let mut options = Vec::new();
                    loop {
                        match at(i) {
                            Some((";", false)) => {
                                i += 1;
                                break;
                            }
                            Some((k, false)) if at(i + 1) == Some(("=", false)) => {
                                let Some((v, _)) = at(i + 2) else { return Err(format!("{k}: no value")) };
                                options.push((k.to_string(), v.to_string()));
                                i += 3;
                            }
                            _ => return Err(format!("{class}: expected key=value or ';'")),
                        }
                    }
                    modules.push(Module { class: class.to_string(), options });
                }
                _ => return Err(format!("section {sec} is not closed")),
            }
        }
        if at(i) == Some((";", false)) {
            i += 1;
        }
        if sec == name {
            return Ok(modules);
        }
    }
    Err(format!("no section {name:?}"))
}

/// The users (`user_<name>="<password>"`) of the `DigestLoginModule` in
/// section `name`.
///
/// # Errors
/// As [`section`], or when the section has no digest users.
pub(crate) fn digest_users(text: &str, name: &str) -> Result<BTreeMap<String, String>, String> {
    let mut users = BTreeMap::new();
    for m in section(text, name)? {
        if m.class.ends_with("DigestLoginModule") {
            for (k, v) in m.options {
                if let Some(u) = k.strip_prefix("user_") {
                    users.insert(u.to_string(), v);
                }
            }
        }
    }
    if users.is_empty() {
        return Err(format!("section {name:?} has no DigestLoginModule with user_<name> options"));
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_apaches_example() {
        let text = "// the server\nServer {\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n  \
                    user_super=\"adminsecret\" /* the admin */\n  user_bob=\"bob;secret\";\n};\n\
                    Client {\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n  \
                    username=\"bob\"\n  password=\"bob;secret\";\n};\n";
        let users = digest_users(text, "Server").unwrap();
        assert_eq!(users.get("super").map(String::as_str), Some("adminsecret"));
        assert_eq!(users.get("bob").map(String::as_str), Some("bob;secret"));
        let client = section(text, "Client").unwrap();
        assert_eq!(client[0].options[0], ("username".to_string(), "bob".to_string()));
        assert!(digest_users(text, "Other").is_err());
        assert!(digest_users(text, "Client").is_err(), "no user_ options");
        for bad in ["Server {", "Server { x required a=; };", "{ };", "Server { m required user_a=\"x };"] {
            assert!(section(bad, "Server").is_err(), "{bad}");
        }
    }
}
