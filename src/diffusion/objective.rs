//! What training regresses, as a weight on the noise prediction's squared error per noise level:
//! the noise itself (ε-prediction, Ho et al. 2020) or the velocity of the straight path from
//! the data to the noise (flow matching, Lipman et al. 2023; rectified flow, Liu et al. 2023).

use serde::{Deserialize, Serialize};

use super::schedule::{rectified_time, ScheduleKind};

/// The training objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Objective {
    /// Mean squared error of the predicted noise.
    #[default]
    Epsilon,
    /// Mean squared error of the predicted velocity v = ε − x_0 of the straight path
    /// x_s = (1 − s) x_0 + s ε (see [`rectified_time`]).
    FlowMatching,
}

impl Objective {
    /// The schedule a model trained on this objective gets unless one is asked for: the cosine
    /// schedule for ε, the straight path itself for flow matching.
    pub fn default_schedule(self) -> ScheduleKind {
        match self {
            Objective::Epsilon => ScheduleKind::Cosine,
            Objective::FlowMatching => ScheduleKind::Rectified,
        }
    }

    /// The weight on ‖ε̂ − ε‖² at level ᾱ whose mean over levels is this objective's loss.
    ///
    /// The velocity follows from the noise prediction: x̂_0 = (x_t − σ ε̂) / α, so in the straight
    /// path's units v̂ − v = (ε̂ − ε) − (x̂_0 − x_0) = (ε̂ − ε)(α + σ) / α. The model predicts
    /// ε̂ = (prior) + α F (`model::predict_eps`), so in terms of the network's output F the
    /// velocity loss weighs every level by (α + σ)² = 1 + 2ασ, between 1 and 2, where the ε loss
    /// weighs it by α² and all but ignores the noisiest levels, the ones a sampler with few
    /// steps relies on most.
    pub fn eps_error_weight(self, alpha_bar: f64) -> f64 {
        match self {
            Objective::Epsilon => 1.0,
            Objective::FlowMatching => (1.0 - rectified_time(alpha_bar)).powi(-2),
        }
    }
}
