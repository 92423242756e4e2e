//! Service discovery (Curator's curator-x-discovery layout and JSON): three
//! instances of "orders" register; a client picks them round-robin; one
//! goes away and the provider stops handing it out.
//!
//! ```text
//! cargo run --example discovery
//! ```

mod common;

use std::time::Duration;

use zk_recipes::discovery::{ProviderStrategy, ServiceDiscovery, ServiceInstance};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let target = common::target().await.map_err(|e| e.to_string())?;
    let base = format!("{}/services", common::base("discovery"));

    // Three servers of "orders", each with its own session.
    let mut servers = Vec::new();
    for (i, port) in [8081u16, 8082, 8083].into_iter().enumerate() {
        let fw = common::session(&target.connect).await?;
        let d = ServiceDiscovery::new(&fw, &base);
        d.start().await?;
        let me = ServiceInstance::builder("orders")
            .id(&format!("orders-{i}"))
            .address("10.0.0.7")
            .port(port)
            .uri_spec("{scheme}://{address}:{port}")
            .build();
        d.register_service(&me).await?;
        println!("registered {} at {}:{}", me.id, me.address.as_deref().unwrap_or("?"), port);
        servers.push((d, me, fw));
    }

    let client_fw = common::session(&target.connect).await?;
    let discovery = ServiceDiscovery::new(&client_fw, &base);
    println!("services: {:?}", discovery.query_for_names().await?);
    let provider = discovery.service_provider("orders", ProviderStrategy::RoundRobin);
    provider.start().await?;
    let picks: Vec<String> = (0..6).filter_map(|_| provider.get_instance().map(|i| i.id)).collect();
    println!("round robin: {}", picks.join(", "));

    // orders-1 shuts down: its instance is unregistered.
    let (d, me, fw) = servers.remove(1);
    d.close().await;
    fw.close().await;
    println!("{} left", me.id);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while provider.get_all_instances().len() != 2 {
        if tokio::time::Instant::now() > deadline {
            return Err("the provider never saw the instance go".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let picks: Vec<String> = (0..4).filter_map(|_| provider.get_instance().map(|i| i.id)).collect();
    println!("round robin after: {}", picks.join(", "));
    println!("instance JSON: {}", String::from_utf8_lossy(&servers[0].1.to_json()));
    provider.close().await;
    for (d, _, fw) in servers {
        d.close().await;
        fw.close().await;
    }
    client_fw.close().await;
    target.stop().await;
    Ok(())
}
