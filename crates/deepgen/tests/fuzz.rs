//! A short fuzz run of every parser of user input (the long run is `bench/src/bin/fuzz.rs`, its
//! counts in `bench/RESULTS.md`): no panic, one-line errors, memory under the bound.

#[path = "fuzz/harness.rs"]
mod harness;

#[global_allocator]
static ALLOC: harness::Counting = harness::Counting;

/// Inputs per parser in the test suite: a few seconds in all.
const INPUTS: usize = 4000;

#[test]
fn every_parser_survives_mutated_and_random_inputs() {
    let mut report = vec![];
    for t in harness::targets() {
        let tally = harness::fuzz(&t, INPUTS, 22);
        report.push(format!(
            "{}: {} inputs, {} valid, {} errors, {} panics, {} multi-line errors, {} over the \
            bound, peak {} KB, {:.1} s",
            tally.name,
            tally.inputs,
            tally.valid,
            tally.errors,
            tally.panics,
            tally.multiline,
            tally.over_bound,
            tally.peak_bytes >> 10,
            tally.seconds
        ));
        assert_eq!(tally.panics, 0, "{}: panics on {:?}", tally.name, tally.panic_inputs);
        assert_eq!(tally.multiline, 0, "{}: {:?}", tally.name, tally.multiline_examples);
        assert_eq!(tally.over_bound, 0, "{}: memory over the bound", tally.name);
        // The mutations must reach past the first check: several distinct errors, some valid.
        assert!(tally.messages.len() >= 3, "{}: only {:?}", tally.name, tally.messages);
        assert!(tally.valid > 0, "{}: no valid input at all", tally.name);
    }
    println!("{}", report.join("\n"));
}

#[test]
fn the_allocator_counts_what_a_call_holds() {
    // The measure itself must see a large allocation, or the bound above proves nothing.
    let t = harness::Target {
        name: "alloc",
        seeds: vec![vec![1]],
        text: false,
        fix: None,
        run: Box::new(|_| {
            let v = vec![1u8; 200 << 20];
            std::hint::black_box(&v);
            Ok(())
        }),
    };
    let tally = harness::fuzz(&t, 2, 1);
    assert_eq!(tally.over_bound, 2);
    assert!(tally.peak_bytes >= 200 << 20);
}

/// Every number in every model's config set to a huge value (a flag with three zeros too many,
/// an edited checkpoint): building the model is refused before its tensors are allocated.
#[test]
fn every_model_with_a_huge_number_in_its_config_is_refused_within_the_bound() {
    use candle_core::Device;
    use deepgen::models::{models, Model, ModelConfig};
    deepgen::limits::set_memory_bound(harness::BOUND);
    let mut tried = 0;
    for info in models() {
        let base = ModelConfig::preset(info.name, &[1, 8, 8], true).unwrap();
        let json = serde_json::to_value(&base).unwrap();
        let mut paths = vec![];
        numbers(&json, &mut vec![], &mut paths);
        for path in paths {
            for huge in [1e5, 1e7, 1e9, 4294967296.0, 1e15] {
                let mut v = json.clone();
                let mut at = &mut v;
                for k in &path {
                    at = &mut at[k.as_str()];
                }
                *at = serde_json::json!(huge as u64);
                let Ok(cfg) = serde_json::from_value::<ModelConfig>(v) else { continue };
                tried += 1;
                let (res, peak) = harness::measure(|| {
                    std::panic::catch_unwind(|| Model::new(&cfg, 0, &Device::Cpu).map(|_| ()))
                });
                let what = format!("{} with {} = {huge}", info.name, path.join("."));
                let res = res.unwrap_or_else(|_| panic!("{what}: panicked"));
                if let Err(e) = &res {
                    assert!(!e.to_string().contains('\n'), "{what}: {e}");
                }
                assert!(peak as u64 <= harness::BOUND + (1 << 20), "{what}: held {peak} bytes");
            }
        }
    }
    assert!(tried > 100, "only {tried} configs built");
}

fn numbers(v: &serde_json::Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                at.push(k.clone());
                numbers(x, at, out);
                at.pop();
            }
        }
        serde_json::Value::Number(n) if n.is_u64() => out.push(at.clone()),
        _ => {}
    }
}
