//! A supervisor that restarts a worker when its heartbeat check turns Unhealthy.
//!
//! The worker beats every 50 ms; the second incarnation hangs after a few beats. The health registry
//! notices the missing beats, the supervisor sees the transition to Unhealthy and restarts the worker, and
//! the check recovers. Run with `cargo run -p sightline-health --example supervisor`.

use std::time::Duration;

use sightline_health::{CheckOptions, Health, Heartbeat, Status};

fn spawn_worker(heartbeat: Heartbeat, generation: u32) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for beat in 0.. {
            // The first worker hangs after five beats, as a deadlocked worker would.
            if generation == 1 && beat == 5 {
                println!("worker {generation}: stuck");
                std::future::pending::<()>().await;
            }
            heartbeat.beat();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let metrics = sightline_core::Registry::new();
    let heartbeat = Heartbeat::new(Duration::from_millis(50), 3);
    let health = Health::builder(&metrics)
        .check(
            "worker",
            CheckOptions::new().interval(Duration::from_millis(25)).thresholds(1, 2),
            heartbeat.clone(),
        )
        .build()?;
    let mut transitions = health.subscribe();
    let _running = health.start();

    let mut generation = 1;
    let mut worker = spawn_worker(heartbeat.clone(), generation);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut restarted = false;
    while let Ok(Ok(transition)) = tokio::time::timeout_at(deadline, transitions.recv()).await {
        println!(
            "health: {} {} -> {} ({})",
            transition.check, transition.from, transition.to, transition.message
        );
        match transition.to {
            Status::Unhealthy => {
                worker.abort();
                generation += 1;
                println!("supervisor: restarting the worker (generation {generation})");
                worker = spawn_worker(heartbeat.clone(), generation);
                restarted = true;
            }
            Status::Healthy if restarted => {
                println!("supervisor: the worker recovered");
                return Ok(());
            }
            _ => {}
        }
    }
    Err("the worker did not recover within 5 s".into())
}
