//! A linearizability checker for registers, in the manner of Wing and
//! Gong with Lowe's memoisation (as Porcupine does it): the history of one
//! key's writes and reads, each with the instant it was called and the
//! instant it returned (never, for a write whose outcome the client could
//! not learn), is linearizable when some order of the operations, each
//! placed between its call and its return, makes every read return the
//! last value written before it.
//!
//! Linearizability is local (a history is linearizable when each object's
//! history is), so the simulator checks each key on its own.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

/// What an operation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Wrote this value (values are unique, 0 is the initial one).
    Write(u64),
    /// Read this value.
    Read(u64),
}

/// One operation on a register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Op {
    /// What it did.
    pub kind: Kind,
    /// When it was called (a logical instant).
    pub call: u64,
    /// When it returned, if the client learnt it.
    pub ret: Option<u64>,
}

#[derive(Clone, Copy)]
struct Entry {
    op: usize,
    is_call: bool,
    prev: usize,
    next: usize,
}

/// Whether the history of one register (starting at value 0) is
/// linearizable; `Err` describes the shortest prefix that is not.
pub(super) fn check(ops: &[Op]) -> Result<(), String> {
    // Reads that never returned said nothing: leave them out.
    let ops: Vec<Op> =
        ops.iter().copied().filter(|o| o.ret.is_some() || matches!(o.kind, Kind::Write(_))).collect();
    let n = ops.len();
    if n == 0 {
        return Ok(());
    }
    // Events in time order, calls before returns at the same instant (an
    // operation that returned at t does not precede one called at t).
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, o) in ops.iter().enumerate() {
        events.push((o.call, true, i));
        events.push((o.ret.unwrap_or(u64::MAX), false, i));
    }
    events.sort_by_key(|&(t, is_call, i)| (t, !is_call, i));
    // A doubly linked list with a sentinel head at index 0.
    let mut list: Vec<Entry> = Vec::with_capacity(2 * n + 1);
    list.push(Entry { op: usize::MAX, is_call: false, prev: 0, next: 1 });
    let mut call_at = vec![0; n];
    let mut ret_at = vec![0; n];
    for (k, &(_, is_call, op)) in events.iter().enumerate() {
        let idx = k + 1;
        list.push(Entry { op, is_call, prev: idx - 1, next: if k + 1 < events.len() { idx + 1 } else { 0 } });
        if is_call { call_at[op] = idx } else { ret_at[op] = idx }
    }
    list[0].prev = events.len();

    let words = n.div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut cache: HashSet<(Vec<u64>, u64)> = HashSet::new();
    let mut state = 0u64;
    // (call entry, state before it)
    let mut stack: Vec<(usize, u64)> = Vec::new();
    let mut entry = list[0].next;
    let mut longest = 0;
    let mut blocker = None;

    let unlink = |list: &mut Vec<Entry>, i: usize| {
        let (p, nx) = (list[i].prev, list[i].next);
        list[p].next = nx;
        list[nx].prev = p;
    };
    let relink = |list: &mut Vec<Entry>, i: usize| {
        let (p, nx) = (list[i].prev, list[i].next);
        list[p].next = i;
        list[nx].prev = i;
    };

    while list[0].next != 0 {
        let e = list[entry];
        if entry != 0 && e.is_call {
            let next_state = match ops[e.op].kind {
                Kind::Write(v) => Some(v),
                Kind::Read(v) if v == state => Some(state),
                Kind::Read(_) => None,
            };
            if let Some(ns) = next_state {
                let mut lin = linearized.clone();
                lin[e.op / 64] |= 1 << (e.op % 64);
                if cache.insert((lin.clone(), ns)) {
                    stack.push((entry, state));
                    longest = longest.max(stack.len());
                    state = ns;
                    linearized = lin;
                    unlink(&mut list, entry);
                    unlink(&mut list, ret_at[e.op]);
                    entry = list[0].next;
                    continue;
                }
            }
            entry = e.next;
            continue;
        }
        // An operation returned before any order could place it (or
        // nothing is left to try): undo the last choice.
        let returned = ops.get(e.op).copied();
        if stack.len() >= longest {
            blocker = returned.or(blocker);
        }
        let Some((c, s)) = stack.pop() else {
            return Err(format!(
                "not linearizable: at most {longest} of {n} operations can be ordered, then no order \
                 places {:?}",
                blocker.or(returned)
            ));
        };
        let op = list[c].op;
        state = s;
        linearized[op / 64] &= !(1 << (op % 64));
        relink(&mut list, ret_at[op]);
        relink(&mut list, c);
        entry = list[c].next;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(v: u64, call: u64, ret: Option<u64>) -> Op {
        Op { kind: Kind::Write(v), call, ret }
    }
    fn r(v: u64, call: u64, ret: u64) -> Op {
        Op { kind: Kind::Read(v), call, ret: Some(ret) }
    }

    #[test]
    fn sequential_histories() {
        assert!(check(&[]).is_ok());
        assert!(check(&[r(0, 1, 2), w(1, 3, Some(4)), r(1, 5, 6), w(2, 7, Some(8)), r(2, 9, 10)]).is_ok());
        // A read of a value overwritten before the read began.
        assert!(check(&[w(1, 1, Some(2)), w(2, 3, Some(4)), r(1, 5, 6)]).is_err());
        // A read of the initial value after a write returned.
        assert!(check(&[w(1, 1, Some(2)), r(0, 3, 4)]).is_err());
        // A read of a value never written.
        assert!(check(&[r(7, 1, 2)]).is_err());
    }

    #[test]
    fn concurrent_operations_may_take_effect_in_either_order() {
        // Two overlapping writes, then reads that agree on one order.
        assert!(check(&[w(1, 1, Some(5)), w(2, 2, Some(6)), r(1, 7, 8), r(1, 9, 10)]).is_ok());
        assert!(check(&[w(1, 1, Some(5)), w(2, 2, Some(6)), r(2, 7, 8)]).is_ok());
        // ...but not on two orders.
        assert!(check(&[w(1, 1, Some(5)), w(2, 2, Some(6)), r(2, 7, 8), r(1, 9, 10)]).is_err());
        // A read overlapping a write sees either value, but two reads
        // one after the other cannot see new then old.
        assert!(check(&[w(1, 1, Some(10)), r(1, 2, 3), r(0, 4, 5)]).is_err());
        assert!(check(&[w(1, 1, Some(10)), r(0, 2, 3), r(1, 4, 5)]).is_ok());
    }

    #[test]
    fn a_write_whose_outcome_is_unknown_may_or_may_not_have_happened() {
        assert!(check(&[w(1, 1, None), r(0, 2, 3)]).is_ok());
        assert!(check(&[w(1, 1, None), r(1, 2, 3)]).is_ok());
        assert!(check(&[w(1, 1, None), r(0, 2, 3), r(1, 4, 5)]).is_ok());
        assert!(check(&[w(1, 1, None), r(1, 2, 3), r(0, 4, 5)]).is_err());
        // It cannot have taken effect before it was called.
        assert!(check(&[r(1, 1, 2), w(1, 3, None)]).is_err());
    }

    #[test]
    fn a_long_history_checks_quickly() {
        let mut ops = Vec::new();
        let mut t = 0;
        for v in 1..=400u64 {
            ops.push(w(v, t, Some(t + 3)));
            ops.push(r(v - 1, t + 1, t + 2));
            ops.push(r(v, t + 4, t + 5));
            t += 6;
        }
        assert!(check(&ops).is_ok());
    }
}
