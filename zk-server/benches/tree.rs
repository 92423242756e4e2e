//! The server's hot paths without sockets: applying txns to the data
//! tree, looking nodes up, and a snapshot written from a tree view and
//! read back into a tree.
//!
//! `cargo bench -p zk-server --bench tree`

#![allow(missing_docs)]

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use zk_proto::OpCode;
use zk_proto::records::{Acl, CreateTxn, SetDataTxn, StatPersisted, TxnBody, TxnHeader};
use zk_server::persist::compress::Compression;
use zk_server::persist::snapshot;
use zk_server::tree::DataTree;

const NODES: usize = 100_000;

fn header(zxid: i64, t: OpCode) -> TxnHeader {
    TxnHeader { client_id: 1, cxid: 1, zxid, time: 1_765_000_000_000 + zxid, txn_type: t }
}

fn create(path: String) -> TxnBody {
    TxnBody::Create(CreateTxn {
        path,
        data: Some(Bytes::from_static(&[b'm'; 100])),
        acl: Acl::open_unsafe(),
        ephemeral: false,
        parent_c_version: -1,
    })
}

/// A tree of `NODES` 100-byte children of `/mem`; the next zxid.
fn filled() -> (DataTree, i64) {
    let mut t = DataTree::new();
    t.apply(&header(1, OpCode::Create), &create("/mem".into()));
    let mut z = 2;
    for i in 0..NODES {
        t.apply(&header(z, OpCode::Create), &create(format!("/mem/node-{i:08}")));
        z += 1;
    }
    (t, z)
}

fn tree_ops(c: &mut Criterion) {
    let (mut t, mut z) = filled();
    let mut g = c.benchmark_group("tree");
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    g.bench_function("get (100k siblings)", |b| {
        b.iter(|| {
            i = (i + 7919) % NODES;
            let n = t.get(&format!("/mem/node-{i:08}")).map(|n| n.client_stat());
            std::hint::black_box(n)
        })
    });
    g.bench_function("setData 100 B", |b| {
        b.iter(|| {
            i = (i + 7919) % NODES;
            z += 1;
            let body = TxnBody::SetData(SetDataTxn {
                path: format!("/mem/node-{i:08}"),
                data: Some(Bytes::from_static(&[b'y'; 100])),
                version: 1,
            });
            std::hint::black_box(t.apply(&header(z, OpCode::SetData), &body).err)
        })
    });
    let mut k = 0usize;
    g.bench_function("create + delete", |b| {
        b.iter(|| {
            k += 1;
            z += 2;
            let p = format!("/mem/x{k}");
            t.apply(&header(z, OpCode::Create), &create(p.clone()));
            let del = TxnBody::Delete(zk_proto::records::DeleteTxn { path: p });
            std::hint::black_box(t.apply(&header(z + 1, OpCode::Delete), &del).err)
        })
    });
    g.finish();
}

fn snapshots(c: &mut Criterion) {
    let (t, _) = filled();
    let mut g = c.benchmark_group("snapshot (100k nodes)");
    g.sample_size(10);
    g.throughput(Throughput::Elements(NODES as u64));
    for comp in [Compression::None, Compression::Snappy, Compression::Gzip] {
        let dir = tempfile::tempdir().expect("temp dir");
        // The checked writer (any order, ACLs interned while writing).
        let write = |zxid: i64| {
            let view = t.snapshot_view();
            snapshot::write_snapshot_with(dir.path(), zxid, &[], comp, |sink| {
                view.walk(|path, n| {
                    let stat: StatPersisted = n.stat();
                    sink.push(snapshot::NodeRecord { path, data: n.data(), acl: n.acl(), stat: &stat })
                })
            })
            .expect("write")
        };
        // The server's: a tree walk, ACL table known up front.
        let write_ordered = |zxid: i64| {
            let view = t.snapshot_view();
            snapshot::write_ordered_snapshot(dir.path(), zxid, &[], comp, view.acl_table(), |sink| {
                view.walk(|path, n| sink.push(path, n.data(), n.acl_id(), &n.stat()))
            })
            .expect("write")
        };
        let mut zxid = 1;
        g.bench_function(format!("write {comp:?}"), |b| {
            b.iter(|| {
                zxid += 1;
                write(zxid)
            })
        });
        g.bench_function(format!("write from a tree walk {comp:?}"), |b| {
            b.iter(|| {
                zxid += 1;
                write_ordered(zxid)
            })
        });
        g.bench_function(format!("load into a tree {comp:?}"), |b| {
            b.iter_batched(
                || (),
                |()| {
                    let l = snapshot::load_latest_with(dir.path(), DataTree::loader)
                        .expect("load")
                        .expect("a snapshot");
                    std::hint::black_box(l.output.finish(l.zxid).expect("a tree").node_count())
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, tree_ops, snapshots);
criterion_main!(benches);
