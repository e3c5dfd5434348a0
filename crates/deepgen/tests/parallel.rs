//! Data-parallel training through the library, with the ranks as threads of this process over an
//! in-process communicator (barriers and a shared buffer, written here), so that the default
//! build proves the shard arithmetic without MPI: N ranks of one shard equal one process with N
//! shards and, without noise, one process on the combined batch; a rank that drifts is named; a
//! failed vote stops every rank. The same under a real `mpirun`: crates/deepgen-cli/tests/mpi.rs.

mod common;

use std::sync::{Arc, Barrier, Mutex};

use candle_core::Device;
use deepgen::data::{Binarize, DataSpec, Dataset};
use deepgen::error::{Error, Result};
use deepgen::models::{Model, ModelConfig};
use deepgen::parallel::{Communicator, GradSum, Parallel};
use deepgen::train::{AdversarialTrainer, LikelihoodTrainer, NoHooks, TrainConfig};

/// What the thread ranks share: a barrier, the float buffer and the byte buffer.
type Shared = (Barrier, Mutex<Vec<f32>>, Mutex<Vec<u8>>);

/// `size` ranks as threads: every collective meets at a barrier around one shared buffer.
struct Threads {
    rank: usize,
    size: usize,
    shared: Arc<Shared>,
}

fn group(size: usize) -> Vec<Parallel> {
    let shared = Arc::new((Barrier::new(size), Mutex::new(vec![]), Mutex::new(vec![])));
    (0..size)
        .map(|rank| Parallel::new(Arc::new(Threads { rank, size, shared: shared.clone() })))
        .collect()
}

impl Communicator for Threads {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()> {
        let (b, acc, _) = &*self.shared;
        if self.rank == 0 {
            *acc.lock().unwrap() = vec![0.0; buf.len()];
        }
        b.wait();
        // Summed in rank order, as a deterministic reduction would.
        for r in 0..self.size {
            if r == self.rank {
                let mut a = acc.lock().unwrap();
                for (x, y) in a.iter_mut().zip(buf.iter()) {
                    *x += y;
                }
            }
            b.wait();
        }
        buf.copy_from_slice(&acc.lock().unwrap());
        b.wait();
        Ok(())
    }
    fn broadcast(&self, buf: &mut [f32], root: usize) -> Result<()> {
        let (b, acc, _) = &*self.shared;
        if self.rank == root {
            *acc.lock().unwrap() = buf.to_vec();
        }
        b.wait();
        buf.copy_from_slice(&acc.lock().unwrap());
        b.wait();
        Ok(())
    }
    fn broadcast_bytes(&self, buf: &mut Vec<u8>, root: usize) -> Result<()> {
        let (b, _, bytes) = &*self.shared;
        if self.rank == root {
            *bytes.lock().unwrap() = buf.clone();
        }
        b.wait();
        *buf = bytes.lock().unwrap().clone();
        b.wait();
        Ok(())
    }
    fn barrier(&self) -> Result<()> {
        self.shared.0.wait();
        Ok(())
    }
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
    fn describe(&self) -> String {
        format!("{} threads", self.size)
    }
}

fn digits(n: usize) -> Dataset {
    DataSpec::Digits { test: false }.load(0).unwrap().take(n)
}

fn recipe(batch: usize, shards: usize, steps: usize) -> TrainConfig {
    TrainConfig { steps, batch_size: batch, shards, eval_every: 1000, ..TrainConfig::default() }
}

fn weights(m: &Model) -> Vec<f32> {
    m.params.vars().flat_map(|(_, v)| common::vec1(v.as_tensor())).collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// NADE trained on `ranks` thread-ranks: every rank's final weights.
fn nade_on_ranks(ranks: usize, batch: usize, shards: usize, steps: usize) -> Vec<Vec<f32>> {
    let cfg = ModelConfig::preset("nade", &[1, 8, 8], true).unwrap();
    let data = digits(400);
    let handles: Vec<_> = group(ranks)
        .into_iter()
        .map(|par| {
            let (cfg, data) = (cfg.clone(), data.clone());
            std::thread::spawn(move || {
                let m = Model::new(&cfg, 7, &Device::Cpu).unwrap();
                let t = LikelihoodTrainer::new(&m, recipe(batch, shards, steps), 7, Binarize::None);
                let mut t = t.unwrap().with_parallel(par).unwrap();
                t.fit(&m, &data, None, &mut NoHooks).unwrap();
                weights(&m)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn ranks_of_one_shard_equal_one_process_on_the_combined_batch() {
    let three = nade_on_ranks(3, 8, 3, 6);
    // Every rank holds the same parameters, bit for bit.
    assert_eq!(three[0], three[1]);
    assert_eq!(three[0], three[2]);
    let combined = nade_on_ranks(1, 24, 1, 6);
    let shards = nade_on_ranks(1, 8, 3, 6);
    assert!(max_diff(&three[0], &combined[0]) < 1e-6, "{}", max_diff(&three[0], &combined[0]));
    assert!(max_diff(&three[0], &shards[0]) < 1e-6, "{}", max_diff(&three[0], &shards[0]));
    // Two ranks sharing three shards (rank 0 computes two of them) are the same computation.
    let uneven = nade_on_ranks(2, 8, 3, 6);
    assert!(max_diff(&three[0], &uneven[0]) < 1e-6);
    // The control: one shard of 8 is another computation.
    let small = nade_on_ranks(1, 8, 1, 6);
    assert!(max_diff(&three[0], &small[0]) > 1e-4);
}

#[test]
fn one_shard_in_one_process_is_training_without_shards() {
    // The pass-through: the default trainer is untouched by the data-parallel path, bit for bit.
    let cfg = ModelConfig::preset("nade", &[1, 8, 8], true).unwrap();
    let data = digits(400);
    let m = Model::new(&cfg, 7, &Device::Cpu).unwrap();
    let mut t = LikelihoodTrainer::new(&m, recipe(16, 1, 3), 7, Binarize::None).unwrap();
    t.fit(&m, &data, None, &mut NoHooks).unwrap();
    assert!(weights(&m) == nade_on_ranks(1, 16, 1, 3)[0], "not bit-identical");
}

#[test]
fn a_gan_on_two_ranks_equals_two_shards_in_one_process() {
    let cfg = ModelConfig::preset("gan", &[1, 8, 8], false).unwrap();
    let data = digits(300);
    let run = |par: Parallel| {
        let m = Model::new(&cfg, 3, &Device::Cpu).unwrap();
        let mut t = AdversarialTrainer::new(&m, recipe(16, 2, 4), 3, Binarize::None).unwrap();
        t = t.with_parallel(par).unwrap();
        t.fit(&m, &data, &mut NoHooks).unwrap();
        weights(&m)
    };
    let ranks: Vec<Vec<f32>> = std::thread::scope(|s| {
        let hs: Vec<_> = group(2).into_iter().map(|p| s.spawn(|| run(p))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(ranks[0], ranks[1]);
    let one = run(Parallel::local());
    assert!(max_diff(&ranks[0], &one) < 1e-6, "{}", max_diff(&ranks[0], &one));
}

#[test]
fn a_rank_whose_parameters_drift_is_named_and_a_failed_vote_stops_all() {
    let cfg = ModelConfig::preset("nade", &[1, 8, 8], true).unwrap();
    let out: Vec<(String, Vec<usize>)> = std::thread::scope(|s| {
        let hs: Vec<_> = group(3)
            .into_iter()
            .map(|par| {
                let cfg = cfg.clone();
                s.spawn(move || {
                    let m = Model::new(&cfg, 1, &Device::Cpu).unwrap();
                    par.check_identical(&m.params, 5).unwrap();
                    if par.rank() == 2 {
                        let (_, v) = m.params.vars().next().unwrap();
                        v.set(&(v.as_tensor() + 1e-7).unwrap()).unwrap();
                    }
                    let e = par.check_identical(&m.params, 6).unwrap_err();
                    assert!(matches!(e, Error::Ranks(_)));
                    (e.to_string(), par.failed_ranks(par.rank() == 1).unwrap())
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (msg, failed) in &out {
        assert!(msg.contains("rank 2 of 3 holds other parameters at step 6"), "{msg}");
        assert_eq!(failed, &vec![1]);
    }
}

#[test]
fn shard_gradients_are_averaged_and_absent_ones_stay_absent() {
    // Two ranks each add one shard; a third parameter gets no gradient anywhere.
    let dev = Device::Cpu;
    let results: Vec<Vec<Option<Vec<f32>>>> = std::thread::scope(|s| {
        let hs: Vec<_> = group(2)
            .into_iter()
            .map(|par| {
                let dev = dev.clone();
                s.spawn(move || {
                    let w = candle_core::Var::new(&[1f32, 2.0], &dev).unwrap();
                    let u = candle_core::Var::new(&[3f32], &dev).unwrap();
                    let unused = candle_core::Var::new(&[5f32], &dev).unwrap();
                    // Loss_r = (r + 1) * sum(w^2) + r * u: gradients 2 (r + 1) w and r.
                    let r = par.rank() as f64;
                    let loss = ((w.as_tensor().sqr().unwrap().sum_all().unwrap() * (r + 1.0))
                        .unwrap()
                        + (u.as_tensor().sum_all().unwrap() * r).unwrap())
                    .unwrap();
                    let vars = vec![w.clone(), u.clone(), unused.clone()];
                    let mut sum = GradSum::new(&par, vars, 2);
                    sum.add(loss.backward().unwrap(), vec![("loss".into(), r)]).unwrap();
                    let (g, scalars) = sum.reduce().unwrap();
                    assert_eq!(scalars, vec![("loss".to_string(), 0.5)]);
                    [&w, &u, &unused]
                        .iter()
                        .map(|v| g.get(v.as_tensor()).map(common::vec1))
                        .collect()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in &results {
        // Mean of 2w and 4w = 3w; mean of 0 and 1 = 0.5.
        assert_eq!(r[0], Some(vec![3.0, 6.0]));
        assert_eq!(r[1], Some(vec![0.5]));
        assert_eq!(r[2], None);
    }
}
