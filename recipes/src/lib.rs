//! Curator-style recipes (issue: zk-recipes). Not built yet: this crate only
//! reserves its place in the workspace layout; see README.md's status table.
