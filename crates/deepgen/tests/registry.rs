//! The registry walk: every model name of every family builds from its
//! preset, trains a step through the library's training workflow (the one
//! `deepgen train` calls), saves, loads, and then does exactly what its
//! family says it can, and refuses what it says it cannot.

use candle_core::{Device, Tensor};
use deepgen::data::DataSpec;
use deepgen::eval::scores::ScoreKind;
use deepgen::models::{
    models, Density, DensityModel, Encoder, Labels, Model, ModelConfig, Sampler, Training,
};
use deepgen::rng;
use deepgen::run::{self, Quiet};

mod agreement;

use agreement::walk_options as options;

#[test]
fn every_registry_entry_trains_saves_loads_and_does_what_it_says() {
    deepgen::enable_second_order();
    let tmp = tempfile::tempdir().unwrap();
    let names: Vec<&str> = models().map(|m| m.name).collect();
    let mut seen = std::collections::HashSet::new();
    for info in models() {
        assert!(seen.insert(info.name), "{} is registered twice", info.name);
        let name = info.name;
        let out = tmp.path().join(name);
        let summary =
            run::train(&options(name, &out), &mut Quiet).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            summary.lines.iter().any(|l| l.starts_with("run directory:")),
            "{name}: {:?}",
            summary.lines
        );
        let (_, cfg, model) = run::open(&out).unwrap();
        assert_eq!(model.name(), name, "the config built from `{name}` names another model");
        assert_eq!(model.info().name, name);

        // The preset and the recipe come from the family, for any caller.
        let preset = ModelConfig::preset(name, &[1, 8, 8], true).unwrap();
        assert_eq!(preset.name(), name);
        let recipe = ModelConfig::recipe(name, &[1, 8, 8]).unwrap();
        assert_eq!(recipe.adversarial.is_some(), info.training == Training::Adversarial, "{name}");
        assert_eq!(
            cfg.train.adversarial.is_some(),
            info.training == Training::Adversarial,
            "{name}"
        );

        let held = cfg.data.val.clone().unwrap_or_else(|| "digits:test".into());
        let (data, _) = run::load_transformed(&held, &cfg, false).unwrap();
        let x = data.batch(&(0..6).collect::<Vec<_>>(), &Device::Cpu).unwrap();
        check_capabilities(&model, info, &x, &data);
        assert_eq!(ScoreKind::supported(name), info.scores.to_vec());
        for f in info.flags {
            let known =
                <deepgen::models::ModelFlags as clap::Args>::augment_args(clap::Command::new("t"))
                    .get_arguments()
                    .any(|a| a.get_id() == *f);
            assert!(known, "{name} lists the flag `{f}`, which ModelFlags does not declare");
        }
    }
    assert_eq!(seen.len(), names.len());
}

fn check_capabilities(
    model: &Model,
    info: &deepgen::models::ModelInfo,
    x: &Tensor,
    data: &deepgen::data::Dataset,
) {
    let name = info.name;
    let mut r = rng::rng(3);
    let n = x.dim(0).unwrap();
    let lp = model.log_prob(x, &mut r);
    assert_eq!(lp.is_ok(), info.density != Density::None, "{name}: log_prob");
    if let Ok(lp) = lp {
        let v = lp.to_vec1::<f32>().unwrap();
        assert!(v.len() == n && v.iter().all(|l| l.is_finite()), "{name}: log p {v:?}");
    }
    let s = model.sample(3, &mut r);
    assert_eq!(s.is_ok(), info.sampler, "{name}: sample");
    if let Ok(s) = s {
        assert_eq!(s.dims(), &[3, model.config.dim()], "{name}: sample shape");
    }
    assert_eq!(
        model.sample_sequential(2, None, &mut r).is_ok(),
        info.completion,
        "{name}: sequential"
    );
    assert_eq!(
        model.conditionals(x).is_some(),
        info.completion && name != "bernoulli",
        "{name}: conditionals"
    );
    assert_eq!(model.encode(x).is_ok(), info.encoder, "{name}: encoder");
    assert_eq!(model.has_features(), info.features.is_some(), "{name}: features");
    assert_eq!(model.features(x).is_ok(), info.features.is_some(), "{name}: features");
    assert_eq!(
        model.as_adversarial().is_some(),
        info.training == Training::Adversarial,
        "{name}: adversarial"
    );
    let translates = matches!(name, "cyclegan" | "stargan");
    assert_eq!(model.as_translator().is_some(), translates, "{name}: translator");
    if let Some(t) = model.as_translator() {
        let to = match t.domains() {
            deepgen::models::Domains::Pair => deepgen::models::Target::B,
            deepgen::models::Domains::Attributes(cols) => {
                let mut enc = vec![];
                for _ in 0..n {
                    deepgen::data::attributes::encode(&cols, &vec![0; cols.len()], &mut enc);
                }
                let w = deepgen::data::attributes::width(&cols);
                deepgen::models::Target::Encoded(
                    Tensor::from_vec(enc, (n, w), &Device::Cpu).unwrap(),
                )
            }
        };
        assert_eq!(t.translate(x, &to).unwrap().dims(), x.dims(), "{name}: translation shape");
    }
    // A model that reads captions gets them in its batch rows, as its trainer gives them.
    let idx: Vec<usize> = (0..n).collect();
    let rows = deepgen::train::batch_rows(model.vocab(), data, &idx, &Device::Cpu, &mut r).unwrap();
    let loss = deepgen::models::Objective::loss_labelled(model, &rows, Some(&[0; 6][..n]), &mut r);
    assert_eq!(loss.is_ok(), info.training == Training::Likelihood, "{name}: likelihood objective");
    let labelled = model.log_probs(&data.take(6), 6, &mut r);
    let scored = info.density != Density::None || info.labels == Labels::Target;
    assert_eq!(labelled.is_ok(), scored, "{name}: log_probs");
}

#[test]
fn flags_a_model_does_not_take_are_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let mut o = options("nade", &tmp.path().join("n"));
    o.model_flags.latent = Some(3);
    let e = run::train(&o, &mut Quiet).err().unwrap().to_string();
    assert!(
        e.contains("--latent does not apply to the nade model (it applies to: vae, gan"),
        "{e}"
    );
    let mut o = options("vae", &tmp.path().join("v"));
    o.critic.n_critic = Some(2);
    let e = run::train(&o, &mut Quiet).err().unwrap().to_string();
    assert!(
        e.contains(
            "--n-critic does not apply to the vae model (it applies to the adversarial models: gan"
        ),
        "{e}"
    );
    assert!(
        !tmp.path().join("n").exists() && !tmp.path().join("v").exists(),
        "a refused run left a directory"
    );
}

#[test]
fn library_and_cli_share_the_training_defaults() {
    // The defaults a library user gets are the family's recipe (what `--help` prints).
    let digits = DataSpec::Digits { test: false }.load(0).unwrap();
    for info in models() {
        let recipe = ModelConfig::recipe(info.name, &digits.shape).unwrap();
        let text =
            deepgen::run::options::defaults_text(|t| t.steps.to_string(), |m| m.name == info.name);
        assert!(
            text.starts_with(&recipe.steps.to_string()),
            "{}: {text} vs {}",
            info.name,
            recipe.steps
        );
    }
    let help = deepgen::run::options::defaults_text(|t| t.steps.to_string(), |_| true);
    assert!(help.contains("4000 for vae") && help.contains("2000 otherwise"), "{help}");
    assert!(help.contains("on 2-D toy data 10000 for gan"), "{help}");
}
