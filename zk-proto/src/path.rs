//! Path validation, with the rules of Apache's `PathUtils.validatePath`,
//! shared by the client (before sending) and the server (before applying).

/// Why a path is not a valid ZooKeeper path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid path {path:?}: {reason}")]
pub struct InvalidPath {
    /// The path as given.
    pub path: String,
    /// Apache's wording of the reason.
    pub reason: &'static str,
}

/// Checks a path as Apache does; `sequential` checks it as the prefix of a
/// sequential node (so a trailing `/` is allowed).
///
/// # Errors
/// [`InvalidPath`] with Apache's reason.
///
/// ```
/// use zk_proto::path::validate_path;
/// assert!(validate_path("/a/b", false).is_ok());
/// assert!(validate_path("/a/", true).is_ok());
/// assert!(validate_path("/a/", false).is_err());
/// assert!(validate_path("a", false).is_err());
/// assert!(validate_path("/a//b", false).is_err());
/// assert!(validate_path("/a/./b", false).is_err());
/// ```
pub fn validate_path(path: &str, sequential: bool) -> Result<(), InvalidPath> {
    if sequential {
        // Apache validates a sequential prefix as if the counter were there.
        return validate_path(&format!("{path}1"), false)
            .map_err(|e| InvalidPath { path: path.to_owned(), reason: e.reason });
    }
    let err = |reason| Err(InvalidPath { path: path.to_owned(), reason });
    if path.is_empty() {
        return err("Path length must be > 0");
    }
    if !path.starts_with('/') {
        return err("Path must start with / character");
    }
    if path.len() == 1 {
        return Ok(());
    }
    if path.ends_with('/') {
        return err("Path must not end with / character");
    }
    let chars: Vec<char> = path.chars().collect();
    let mut last = '/';
    for i in 1..chars.len() {
        let c = chars[i];
        if c == '\0' {
            return err("null character not allowed");
        } else if c == '/' && last == '/' {
            return err("empty node name specified");
        } else if c == '.' && last == '.' {
            if chars[i - 2] == '/' && (i + 1 == chars.len() || chars[i + 1] == '/') {
                return err("relative paths not allowed");
            }
        } else if c == '.' {
            if chars[i - 1] == '/' && (i + 1 == chars.len() || chars[i + 1] == '/') {
                return err("relative paths not allowed");
            }
        } else if ('\u{0001}'..='\u{001f}').contains(&c)
            || ('\u{007f}'..='\u{009f}').contains(&c)
            || ('\u{e000}'..='\u{f8ff}').contains(&c)
            // Java sees a character above U+FFFF as a surrogate pair, and
            // rejects surrogates.
            || c >= '\u{fff0}'
        {
            return err("invalid character");
        }
        last = c;
    }
    Ok(())
}

/// The parent of a valid path (`/` for a top-level node and for `/`).
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// The last component of a valid path (`""` for `/`).
pub fn basename(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apache_cases() {
        let ok = ["/", "/a", "/a/b", "/a.b", "/..a", "/a..", "/a/.b", "/zookeeper/quota", "/ü"];
        for p in ok {
            assert!(validate_path(p, false).is_ok(), "{p}");
        }
        assert!(validate_path("/a/.", true).is_ok());
        let bad = [
            "/\u{1f600}",
            "",
            "a",
            "/a/",
            "//",
            "/a//b",
            "/.",
            "/..",
            "/a/.",
            "/a/..",
            "/a/./b",
            "/a/../b",
            "/a\0b",
            "/a\u{1}",
            "/\u{7f}",
            "/\u{e000}",
            "/\u{fff5}",
        ];
        for p in bad {
            assert!(validate_path(p, false).is_err(), "{p:?}");
        }
        assert!(validate_path("/a/", true).is_ok());
        assert!(validate_path("/a//", true).is_err());
    }

    #[test]
    fn parent_and_basename() {
        assert_eq!(parent("/a/b/c"), "/a/b");
        assert_eq!(parent("/a"), "/");
        assert_eq!(parent("/"), "/");
        assert_eq!(basename("/a/b"), "b");
        assert_eq!(basename("/"), "");
    }
}
