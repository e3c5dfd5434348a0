//! An exponential moving average of a generator's weights (Yazici et al. 2019; Progressive GAN's
//! `Gs`, "G_smoothing"): avg <- beta avg + (1 - beta) w after every generator update. Samples,
//! `eval` and reports use the average; training uses the live weights. The averages are
//! parameters of their own (`g_ema.*`), saved in checkpoints and trained by no optimiser.

use candle_core::Var;

use crate::error::{Error, Result};
use crate::nn::Params;

/// Refuses a decay outside [0, 1), naming `--g-ema`.
pub fn check(beta: f64) -> Result<()> {
    if !(0.0..1.0).contains(&beta) {
        return Err(Error::config(format!(
            "--g-ema must be in [0, 1) (a decay such as 0.999), got {beta}"
        )));
    }
    Ok(())
}

/// Registers `g_ema.{name}` (for each live weight `g.{name}`) as a copy of the live weight.
pub fn register(p: &mut Params, names: &[String], vars: &[Var]) -> Result<Vec<Var>> {
    let mut avg = Vec::with_capacity(vars.len());
    for (name, v) in names.iter().zip(vars) {
        let name = format!("g_ema.{}", name.strip_prefix("g.").unwrap_or(name));
        // `copy`: a fresh tensor, so the average never aliases the live weight.
        p.add(&name, v.as_tensor().copy()?)?;
        avg.push(
            p.get(&name)
                .cloned()
                .ok_or_else(|| Error::config(format!("parameter {name} vanished")))?,
        );
    }
    Ok(avg)
}

/// One step of the average towards the live weights.
pub fn update(avg: &[Var], live: &[Var], beta: f64) -> Result<()> {
    for (a, w) in avg.iter().zip(live) {
        a.set(&((a.as_tensor() * beta)? + (w.as_tensor().detach() * (1.0 - beta))?)?)?;
    }
    Ok(())
}

/// Makes the average a copy of the live weights (`deepgen eval --live-generator`).
pub fn copy_live(avg: &[Var], live: &[Var]) -> Result<()> {
    for (a, w) in avg.iter().zip(live) {
        a.set(&w.as_tensor().copy()?)?;
    }
    Ok(())
}
