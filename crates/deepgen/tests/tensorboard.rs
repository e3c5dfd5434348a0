//! TensorBoard event files written by a training run, read back record by record (framing,
//! both CRCs, protobuf): the tags and steps a user's `tensorboard --logdir runs` shows, the
//! values of `metrics.jsonl`, the sample grid at each checkpoint, and a resumed run's second
//! file that starts with a SessionLog START at the resume step.

use std::collections::BTreeMap;

use deepgen::run::tensorboard::{event_files, read_events, Content, Event, What};
use deepgen::run::{self, Quiet, TrainOptions};

fn options(model: &str, out: &std::path::Path, steps: i64) -> TrainOptions {
    let mut o = TrainOptions::for_model(model);
    o.run.data = Some("digits".into());
    o.run.steps = Some(steps);
    o.run.eval_every = Some(10);
    o.run.batch_size = Some(16);
    o.run.out = Some(out.to_path_buf());
    o.model_flags.hidden = Some("16".into());
    o.model_flags.latent = Some(2);
    o
}

/// tag -> [(step, value)] of every scalar, and tag -> [(step, png)] of every image.
#[allow(clippy::type_complexity)]
fn summaries(
    events: &[Event],
) -> (BTreeMap<String, Vec<(i64, f32)>>, BTreeMap<String, Vec<(i64, Vec<u8>)>>) {
    let (mut scalars, mut images) = (BTreeMap::new(), BTreeMap::new());
    for e in events {
        let Some(What::Summary(s)) = &e.what else { continue };
        for v in &s.value {
            match &v.content {
                Some(Content::SimpleValue(x)) => {
                    scalars.entry(v.tag.clone()).or_insert_with(Vec::new).push((e.step, *x))
                }
                Some(Content::Image(i)) => {
                    let png = image::load_from_memory(&i.encoded_image_string).unwrap();
                    assert_eq!((png.width() as i32, png.height() as i32), (i.width, i.height));
                    images
                        .entry(v.tag.clone())
                        .or_insert_with(Vec::new)
                        .push((e.step, i.encoded_image_string.clone()))
                }
                None => panic!("a value without content: {}", v.tag),
            }
        }
    }
    (scalars, images)
}

#[test]
fn a_run_writes_tensorboard_events_that_read_back_and_resume_in_a_new_file() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("vae");
    run::train(&options("vae", &out, 20), &mut Quiet).unwrap();
    let files = event_files(&out).unwrap();
    assert_eq!(files.len(), 1, "{files:?}");
    let events = read_events(&files[0]).unwrap();
    assert_eq!(events[0].what, Some(What::FileVersion("brain.Event:2".into())));
    let (scalars, images) = summaries(&events);
    let steps = |tag: &str| scalars[tag].iter().map(|p| p.0).collect::<Vec<_>>();
    assert_eq!(steps("train/loss"), (1..=20).collect::<Vec<_>>());
    assert_eq!(steps("train/lr").len(), 20);
    assert_eq!(steps("train/grad_norm").len(), 20);
    assert_eq!(steps("val/nll"), vec![10, 20]);
    // The losses are metrics.jsonl's, as f32.
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let losses: Vec<f32> = metrics
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["loss"].as_f64())
        .map(|x| x as f32)
        .collect();
    assert_eq!(scalars["train/loss"].iter().map(|p| p.1).collect::<Vec<_>>(), losses);
    assert!(
        scalars.keys().any(|k| k.starts_with("train/") && k.contains("kl")),
        "{:?}",
        scalars.keys()
    );
    let grids = &images["samples"];
    assert_eq!(grids.iter().map(|g| g.0).collect::<Vec<_>>(), vec![10, 20]);
    assert_ne!(grids[0].1, grids[1].1, "the grid changes as the model trains");

    let mut o = TrainOptions::default();
    o.run.resume = Some(out.clone());
    o.run.steps = Some(30);
    run::train(&o, &mut Quiet).unwrap();
    let files = event_files(&out).unwrap();
    assert_eq!(files.len(), 2, "a resumed run writes a new file: {files:?}");
    let second = read_events(&files[1]).unwrap();
    assert_eq!(second[0].what, Some(What::FileVersion("brain.Event:2".into())));
    assert_eq!(second[1].step, 20);
    assert!(matches!(&second[1].what, Some(What::SessionLog(s)) if s.status == 1));
    let (scalars, _) = summaries(&second);
    assert_eq!(
        scalars["train/loss"].iter().map(|p| p.0).collect::<Vec<_>>(),
        (21..=30).collect::<Vec<_>>()
    );
}

#[test]
fn an_adversarial_run_logs_both_players() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("gan");
    let mut o = options("gan", &out, 10);
    o.model_flags.hidden = None;
    o.model_flags.latent = None;
    run::train(&o, &mut Quiet).unwrap();
    let events = read_events(&event_files(&out).unwrap()[0]).unwrap();
    let (scalars, images) = summaries(&events);
    for tag in ["train/d_loss", "train/g_adv", "train/loss"] {
        assert_eq!(scalars[tag].len(), 10, "{tag}: {:?}", scalars.keys());
    }
    assert_eq!(images["samples"].len(), 1);
}
