//! Distillation on a tiny model: the few-step sampler comes nearer the teacher's paths, the run
//! is reproducible by seed, the distilled folder carries its sampler, bad settings are refused.

use super::*;
use scengen::distill::{distill, DistillConfig};

/// A distillation of `teacher` into `out`: DDIM with 2 evaluations, far from the teacher's
/// default sampler, trained for `iterations` steps on 500 teacher paths per regime.
fn distill_config(teacher: &Path, out: &Path, seed: u64, iterations: usize) -> DistillConfig {
    DistillConfig {
        teacher: teacher.to_path_buf(),
        out: out.to_path_buf(),
        sampler: SamplerKind::Ddim {
            steps: 2,
            eta: 0.0,
            spacing: Spacing::Uniform,
        },
        teacher_sampler: SamplerKind::SdeDpmSolver {
            steps: 50,
            spacing: Spacing::LogSnr,
        },
        teacher_paths: 500,
        batch_size: 64,
        iterations,
        learning_rate: 1e-3,
        validate_every: 10,
        seed,
        ..DistillConfig::default()
    }
}

#[test]
fn distillation_brings_a_two_step_sampler_nearer_the_teacher_and_is_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = trained_tiny_model(dir.path());
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    let report = distill(&distill_config(&teacher, &a, 3, 40)).unwrap();
    let checks = &report.record.validation_energy_distance;
    let (first, best) = (checks[0].1, checks[report.record.best_step / 10].1);
    assert!(report.record.best_step > 0, "{checks:?}");
    // Measured: 2.68 with the teacher's weights, 0.13 at step 40.
    assert!(best < 0.2 * first, "{checks:?}");

    distill(&distill_config(&teacher, &b, 3, 40)).unwrap();
    distill(&distill_config(&teacher, &c, 4, 40)).unwrap();
    let bytes = |p: &Path| std::fs::read(p.join(WEIGHTS_FILE)).unwrap();
    assert_eq!(bytes(&a), bytes(&b), "same seed, same weights");
    assert_ne!(bytes(&a), bytes(&c), "another seed, other weights");

    // The folder runs under its own sampler unless another is asked for, by seed.
    let card = load_model(&a, &Device::Cpu).unwrap().card;
    assert_eq!(card.distilled.unwrap().sampler, report.record.sampler);
    let out = |name: &str| dir.path().join(name);
    let mut g = gen_config(&a, out("1.parquet"), "calm", 100, 5);
    g.sampler = None;
    generate(&g).unwrap();
    g.out = out("2.parquet");
    generate(&g).unwrap();
    let meta = read_scenarios(&out("1.parquet")).unwrap().metadata;
    assert!(meta["scengen.sampler"].contains("\"steps\":2"), "{meta:?}");
    assert_eq!(
        std::fs::read(out("1.parquet")).unwrap(),
        std::fs::read(out("2.parquet")).unwrap()
    );
}

#[test]
fn bad_distillation_settings_name_their_option_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = trained_tiny_model(dir.path());
    let out = dir.path().join("distilled");
    let refused = |config: DistillConfig, option: &str| match distill(&config) {
        Err(Error::InvalidOption { option: o, .. }) => {
            assert_eq!(o, option);
            assert!(!out.exists());
        }
        other => panic!("{option}: {other:?}"),
    };
    let ok = distill_config(&teacher, &out, 1, 5);
    refused(
        DistillConfig {
            teacher_paths: 300,
            ..ok.clone()
        },
        "teacher_paths",
    );
    refused(
        DistillConfig {
            iterations: 0,
            ..ok.clone()
        },
        "iterations",
    );
    refused(
        DistillConfig {
            learning_rate: f64::NAN,
            ..ok.clone()
        },
        "learning_rate",
    );
    refused(
        DistillConfig {
            sampler: SamplerKind::DpmSolver {
                steps: 5000,
                spacing: Spacing::LogSnr,
            },
            ..ok
        },
        "steps",
    );
}
