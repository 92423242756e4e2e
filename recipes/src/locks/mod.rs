//! Locks: [`InterProcessMutex`] (Curator's layout, reentrant, fair,
//! watching only the predecessor).

mod mutex;

pub use mutex::{FencingToken, InterProcessMutex};

/// The sort key of a lock-style child: the part after the last occurrence
/// of `lock_name` (the sequence number), or the whole name without it.
pub(crate) fn sort_key<'a>(child: &'a str, lock_name: &str) -> &'a str {
    match child.rfind(lock_name) {
        Some(i) => &child[i + lock_name.len()..],
        None => child,
    }
}

/// `children` sorted as Curator sorts contenders.
pub(crate) fn sorted(mut children: Vec<String>, lock_name: &str) -> Vec<String> {
    children.sort_by(|a, b| sort_key(a, lock_name).cmp(sort_key(b, lock_name)));
    children
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curator_ordering() {
        let kids = vec![
            "_c_9b0d4b7e-0000-4000-8000-000000000000-lock-0000000003".to_string(),
            "_c_00000000-0000-4000-8000-000000000000-lock-0000000001".to_string(),
            "lock-0000000002".to_string(),
        ];
        let s = sorted(kids, "lock-");
        assert!(s[0].ends_with("0001") && s[1].ends_with("0002") && s[2].ends_with("0003"));
        assert_eq!(sort_key("foreign", "lock-"), "foreign");
    }
}
