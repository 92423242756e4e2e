//! The client basics: create, get, set, watch, multi, ephemeral and
//! sequential nodes.
//!
//! ```text
//! cargo run --example quickstart                      # on the bundled server
//! cargo run --example quickstart -- --connect 127.0.0.1:2181
//! ```

mod common;

use zk_client::{Client, CreateMode, Op};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let target = common::target().await?;
    let client = Client::connect(&target.connect).await?;
    println!("Connected: session {:#x}, timeout {:?}", client.session_id(), client.session_timeout());

    let base = common::base("quickstart");
    let _ = client.create("/examples", b"", CreateMode::Persistent).await;
    client.create(&base, b"", CreateMode::Persistent).await?;
    let config = format!("{base}/config");
    let (path, stat) = client.create(&config, b"color=blue", CreateMode::Persistent).await?;
    println!("Created {path} (version {})", stat.version);

    let (data, stat, watch) = client.get_data_watch(&config).await?;
    println!("Read {path}: {:?} (version {}), watching it", String::from_utf8_lossy(&data), stat.version);
    let stat = client.set_data(&config, b"color=green", Some(stat.version)).await?;
    let event = watch.await;
    println!("Watch fired: {:?} on {}", event.event_type, event.path);
    println!("Now at version {}", stat.version);

    match client.set_data(&config, b"color=red", Some(0)).await {
        Err(e) => println!("A write with a stale version is refused: {e}"),
        Ok(_) => println!("unexpected: a stale write succeeded"),
    }

    let (eph, _) = client.create(&format!("{base}/worker-"), b"", CreateMode::EphemeralSequential).await?;
    println!("Ephemeral sequential node: {eph} (goes away with the session)");

    let results = client
        .multi(&[
            Op::check(config.clone(), Some(stat.version)),
            Op::set_data(config.clone(), &b"color=purple"[..], None),
            Op::create(format!("{base}/audit"), &b"changed color"[..], CreateMode::Persistent),
        ])
        .await?;
    println!("A multi applied {} ops atomically", results.len());
    let failed = client
        .multi(&[
            Op::create(format!("{base}/x"), &b""[..], CreateMode::Persistent),
            Op::check(config.clone(), Some(0)),
        ])
        .await;
    println!(
        "A multi with a failing check changes nothing: {}",
        failed.err().map(|e| e.to_string()).unwrap_or_default()
    );
    println!(
        "{base}/x exists after the failed multi: {}",
        client.exists(&format!("{base}/x")).await?.is_some()
    );

    let mut children = client.get_children(&base).await?;
    children.sort();
    println!("Children of {base}: {children:?}");

    client.close().await?;
    println!("Session closed; done.");
    target.stop().await;
    Ok(())
}
