//! Examples and cross-crate tests live in `examples/` and `tests/`; this library is empty.
