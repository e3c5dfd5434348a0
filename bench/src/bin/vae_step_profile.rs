//! Splits one VAE training step (784-512-512-32, batch 128) into forward,
//! backward and optimizer time: `cargo run --release -p deepgen-bench --bin vae_step_profile`.
use std::time::Instant;
use deepgen::models::{Model, ModelConfig, Objective, Device};
use deepgen::train::{Adam, AdamConfig};
fn main() {
    deepgen::enable_second_order();
    deepgen::tune_allocator();
    // Inside a pool, as LikelihoodTrainer::fit runs.
    rayon::ThreadPoolBuilder::new().build().unwrap().install(run)
}
fn run() {
    let cfg = ModelConfig::preset("vae", &[784], true).unwrap();
    let m = Model::new(&cfg, 0, &Device::Cpu).unwrap();
    let mut opt = Adam::new(&m.params, AdamConfig::default()).unwrap();
    let mut r = deepgen::rng::rng(0);
    let v = deepgen::rng::bernoulli(&mut r, &vec![0.2; 128 * 784]);
    let x = deepgen::models::Tensor::from_vec(v, (128, 784), &Device::Cpu).unwrap();
    let (mut tf, mut tb, mut to) = (0.0, 0.0, 0.0);
    let n = 100;
    for i in 0..n + 10 {
        let t0 = Instant::now();
        let l = m.loss(&x, &mut r).unwrap();
        let _ = l.total.to_scalar::<f32>().unwrap();
        let t1 = Instant::now();
        let g = l.total.backward().unwrap();
        let t2 = Instant::now();
        opt.step(&g, 1e-3, 1.0).unwrap();
        let t3 = Instant::now();
        if i >= 10 {
            tf += (t1 - t0).as_secs_f64(); tb += (t2 - t1).as_secs_f64(); to += (t3 - t2).as_secs_f64();
        }
    }
    println!("forward {:.2} ms, backward {:.2} ms, adam {:.2} ms", tf * 1e3 / n as f64, tb * 1e3 / n as f64, to * 1e3 / n as f64);
}
