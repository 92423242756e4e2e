//! The iteration order of Java's `HashSet<String>`, reproduced.
//!
//! Apache ZooKeeper writes a closing session's ephemeral paths into the
//! closeSession txn in the order its `HashSet` of them iterates, and
//! deletes them (firing watches) in that order. To send watch events in
//! the order Apache sends them, prep builds the same list: the session's
//! live ephemerals inserted in creation order into a set with Java's
//! default capacity (16), copied as `HashSet.clone()` copies (a table
//! sized for the current count), then the in-flight creates and deletes
//! applied. Buckets follow `String.hashCode` spread by `h ^ (h >>> 16)`;
//! within a bucket, insertion order (Java's list bins; tree bins, which
//! need 8 colliding paths in one bucket, are not modelled).

/// `java.lang.String.hashCode()`: over UTF-16 code units.
pub(crate) fn string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

fn spread(h: i32) -> usize {
    let h = h as u32;
    (h ^ (h >> 16)) as usize
}

/// `HashMap.tableSizeFor`: the smallest power of two at least `c`.
fn table_size_for(c: usize) -> usize {
    c.max(1).next_power_of_two()
}

/// A `HashSet<String>` that iterates as Java's does.
#[derive(Debug, Clone)]
pub(crate) struct JavaHashSet {
    buckets: Vec<Vec<String>>,
    len: usize,
}

impl JavaHashSet {
    /// `new HashSet<>()`: capacity 16.
    pub(crate) fn new() -> Self {
        JavaHashSet { buckets: vec![Vec::new(); 16], len: 0 }
    }

    /// What `clone()` of a set holding `n` elements starts from.
    fn sized_for(n: usize) -> Self {
        if n == 0 {
            return Self::new();
        }
        let cap = table_size_for((n as f32 / 0.75 + 1.0) as usize);
        JavaHashSet { buckets: vec![Vec::new(); cap], len: 0 }
    }

    /// `set.clone()`.
    pub(crate) fn java_clone(&self) -> Self {
        let mut c = Self::sized_for(self.len);
        for s in self.iter() {
            c.insert(s.to_string());
        }
        c
    }

    fn index(&self, s: &str) -> usize {
        spread(string_hash(s)) & (self.buckets.len() - 1)
    }

    /// `add`: appended to its bucket; the table doubles past 3/4 full.
    pub(crate) fn insert(&mut self, s: String) -> bool {
        let i = self.index(&s);
        if self.buckets[i].contains(&s) {
            return false;
        }
        self.buckets[i].push(s);
        self.len += 1;
        if self.len > self.buckets.len() * 3 / 4 {
            let doubled = vec![Vec::new(); self.buckets.len() * 2];
            let old = std::mem::replace(&mut self.buckets, doubled);
            for s in old.into_iter().flatten() {
                let i = self.index(&s);
                self.buckets[i].push(s);
            }
        }
        true
    }

    /// `remove`.
    pub(crate) fn remove(&mut self, s: &str) {
        let i = self.index(s);
        if let Some(pos) = self.buckets[i].iter().position(|x| x == s) {
            self.buckets[i].remove(pos);
            self.len -= 1;
        }
    }

    /// Iteration order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        self.buckets.iter().flatten().map(String::as_str)
    }

    /// The elements in iteration order.
    pub(crate) fn into_vec(self) -> Vec<String> {
        self.buckets.into_iter().flatten().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_javas() {
        assert_eq!(string_hash("hello"), 99_162_322);
        assert_eq!(string_hash("/eph-c"), 1_442_283_748);
        assert_eq!(string_hash(""), 0);
        assert_eq!(string_hash("é"), 233);
    }

    /// Orders printed by OpenJDK 17 (jshell) for the same insertions.
    #[test]
    fn iteration_orders_are_javas() {
        let mut s = JavaHashSet::new();
        for p in ["/eph-c", "/seq-c-0000000005"] {
            s.insert(p.into());
        }
        assert_eq!(s.java_clone().into_vec(), JAVA_TWO);
        let mut many = JavaHashSet::new();
        for i in 0..40 {
            many.insert(format!("/locks/lock-{i:010}"));
        }
        let mut clone = many.java_clone();
        clone.remove("/locks/lock-0000000003");
        clone.insert("/x".into());
        assert_eq!(clone.into_vec().join(","), JAVA_MANY);
    }

    const JAVA_TWO: [&str; 2] = ["/seq-c-0000000005", "/eph-c"];
    const JAVA_MANY: &str = "/locks/lock-0000000025,/locks/lock-0000000002,/locks/lock-0000000024,\
        /locks/lock-0000000001,/locks/lock-0000000023,/locks/lock-0000000000,/locks/lock-0000000022,\
        /locks/lock-0000000021,/locks/lock-0000000020,/locks/lock-0000000009,/locks/lock-0000000008,\
        /locks/lock-0000000007,/locks/lock-0000000029,/locks/lock-0000000006,/locks/lock-0000000028,\
        /locks/lock-0000000005,/locks/lock-0000000027,/locks/lock-0000000004,/locks/lock-0000000026,\
        /locks/lock-0000000014,/locks/lock-0000000036,/locks/lock-0000000013,/locks/lock-0000000035,\
        /locks/lock-0000000012,/locks/lock-0000000034,/locks/lock-0000000011,/locks/lock-0000000033,\
        /locks/lock-0000000010,/locks/lock-0000000032,/locks/lock-0000000031,/locks/lock-0000000030,/x,\
        /locks/lock-0000000019,/locks/lock-0000000018,/locks/lock-0000000017,/locks/lock-0000000039,\
        /locks/lock-0000000016,/locks/lock-0000000038,/locks/lock-0000000015,/locks/lock-0000000037";
}
