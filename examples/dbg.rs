use scengen::model::UNetConfig;
use scengen::train::*;
fn main() {
    let data = std::path::PathBuf::from("/tmp/gauss.parquet");
    let args: Vec<f64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let mut c = TrainConfig::new(
        &data,
        "/tmp/gm",
        1,
        scengen::io::parse_date("t", "2100-01-01").unwrap(),
    );
    c.architecture = Some(UNetConfig {
        assets: 3,
        window: 8,
        regimes: 2,
        base_channels: 16,
        channel_mults: vec![1, 2],
        blocks_per_level: 1,
        attention_levels: vec![],
        heads: 2,
        groups: 4,
        embed_dim: 32,
    });
    c.epochs = args[0] as usize;
    c.batch_size = 64;
    c.learning_rate = args[1];
    c.warmup_steps = 20;
    c.ema_decay = 0.99;
    c.patience = 100;
    let r = train(&c).unwrap();
    for h in &r.history {
        println!("{} {:.4} {:.4}", h.epoch, h.train_loss, h.validation_loss);
    }
}
#[allow(dead_code)]
fn unused() {}
