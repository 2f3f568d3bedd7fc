"""The results store's schema: its named migrations, in order (scaler.store.migrate applies them).

A schema change is a new entry at the end, never an edit of one applied before: each database
records the names it has seen in `schema_migrations`. docs/results.md describes the tables.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[str, str]] = [
    (
        "001_initial",
        """
        CREATE TABLE steps (
            step_id VARCHAR PRIMARY KEY, name VARCHAR, stage VARCHAR, experiment VARCHAR,
            world VARCHAR, model VARCHAR, source VARCHAR, algorithm VARCHAR,
            size INTEGER, seed INTEGER, eval_set VARCHAR,
            config JSON, inputs JSON, metrics JSON,
            started_at TIMESTAMPTZ, ended_at TIMESTAMPTZ, wall_s DOUBLE,
            host VARCHAR, git_commit VARCHAR, git_dirty BOOLEAN, versions JSON, spec_hash VARCHAR,
            path VARCHAR
        );
        CREATE TABLE metrics (
            step_id VARCHAR, stage VARCHAR, name VARCHAR, value DOUBLE,
            PRIMARY KEY (step_id, name)
        );
        CREATE TABLE eval_problems (
            step_id VARCHAR, problem_id INTEGER, correct BOOLEAN, false_positive BOOLEAN,
            first_wrong_step INTEGER, n_steps INTEGER, pred_answer VARCHAR, gold_answer VARCHAR,
            output VARCHAR,
            PRIMARY KEY (step_id, problem_id)
        );
        CREATE VIEW evals AS
        SELECT s.step_id, s.experiment, s.world, s.model, s.source, s.algorithm, s.size, s.seed,
               s.eval_set, m.accuracy, m.false_positive_rate, m.n, s.inputs->>'$.model' AS train_id
        FROM steps s
        JOIN (PIVOT (SELECT step_id, name, value FROM metrics WHERE stage = 'evaluate')
              ON name IN ('accuracy', 'false_positive_rate', 'n') USING first(value)) m
          USING (step_id)
        WHERE s.stage = 'evaluate';
        """,
    ),
    (
        "002_samples_and_votes",
        """
        ALTER TABLE eval_problems ADD COLUMN reason VARCHAR;
        ALTER TABLE eval_problems ADD COLUMN n_tokens INTEGER;
        ALTER TABLE eval_problems ADD COLUMN n_samples INTEGER;
        ALTER TABLE eval_problems ADD COLUMN n_correct INTEGER;
        ALTER TABLE eval_problems ADD COLUMN pass_at_k BOOLEAN;
        ALTER TABLE eval_problems ADD COLUMN maj_at_k BOOLEAN;
        CREATE TABLE samples (
            step_id VARCHAR, problem_id INTEGER, sample_id INTEGER, extracted VARCHAR,
            correct BOOLEAN, reason VARCHAR, false_positive BOOLEAN, first_wrong_step INTEGER,
            n_tokens INTEGER, text VARCHAR,
            PRIMARY KEY (step_id, problem_id, sample_id)
        );
        CREATE OR REPLACE VIEW evals AS
        SELECT s.step_id, s.experiment, s.world, s.model, s.source, s.algorithm, s.size, s.seed,
               s.eval_set, m.accuracy, m.false_positive_rate, m.n, s.inputs->>'$.model' AS train_id,
               m.pass_at_k, m.maj_at_k, m.k
        FROM steps s
        JOIN (PIVOT (SELECT step_id, name, value FROM metrics WHERE stage = 'evaluate')
              ON name IN ('accuracy', 'false_positive_rate', 'n', 'pass_at_k', 'maj_at_k', 'k')
              USING first(value)) m
          USING (step_id)
        WHERE s.stage = 'evaluate';
        """,
    ),
    (
        "003_data_metrics_and_pits",
        """
        CREATE TABLE pits (
            step_id VARCHAR, problem_id INTEGER, sample_id INTEGER, n_steps INTEGER,
            q_values VARCHAR, pit INTEGER, pit_setlur INTEGER, pit_no_success INTEGER,
            true_pit INTEGER, paired BOOLEAN,
            PRIMARY KEY (step_id, problem_id, sample_id)
        );
        CREATE VIEW data_metrics AS
        SELECT v.step_id, v.experiment, v.world, v.model AS sampler, v.source, v.size, v.seed,
               v.inputs->>'$.candidates' AS candidates_id,
               m.k, m.problems, m.pass_rate, m.coverage_at_k, m.diversity_at_k,
               m.false_positive_rate, m.mean_tokens, g.params, g.sampling_flops,
               g.flops_per_problem
        FROM steps v
        JOIN (PIVOT (SELECT step_id, name, value FROM metrics WHERE stage = 'verify')
              ON name IN ('k', 'problems', 'pass_rate', 'coverage_at_k', 'diversity_at_k',
                          'false_positive_rate', 'mean_tokens')
              USING first(value)) m USING (step_id)
        LEFT JOIN (PIVOT (SELECT step_id, name, value FROM metrics WHERE stage = 'sample')
              ON name IN ('params', 'sampling_flops', 'flops_per_problem')
              USING first(value)) g ON g.step_id = v.inputs->>'$.candidates'
        WHERE v.stage = 'verify';
        CREATE VIEW first_pits AS
        SELECT s.step_id, s.experiment, s.source, s.size, s.seed,
               s.config->>'$.pit' AS rule, m.negatives, m.pairs, m.first_pit_accuracy,
               m.first_pit_accuracy_setlur, m.first_pit_accuracy_no_success
        FROM steps s
        JOIN (PIVOT (SELECT step_id, name, value FROM metrics WHERE stage = 'build')
              ON name IN ('negatives', 'pairs', 'first_pit_accuracy',
                          'first_pit_accuracy_setlur', 'first_pit_accuracy_no_success')
              USING first(value)) m USING (step_id)
        WHERE s.stage = 'build' AND s.config->>'$.kind' = 'per_step_dpo';
        """,
    ),
    # 004_scaling_analyses and 005_shared_fits_and_single_points are the analysis' own tables,
    # declared with it (analysis/schema.py) and applied when an analysis is saved.
    (
        "006_verdict_rule",
        """
        ALTER TABLE samples ADD COLUMN rule VARCHAR;
        ALTER TABLE eval_problems ADD COLUMN rule VARCHAR;
        """,
    ),
    (
        "007_step_manifests",
        # Which folder a step's rows came from: a step run again after its folder was damaged
        # keeps its name and id, and is told apart by its manifest. Rows from before are
        # loaded again once from their folder.
        "ALTER TABLE steps ADD COLUMN manifest_sha256 VARCHAR;",
    ),
    (
        "008_sample_texts_in_step_files",
        # Sample texts stay in the steps' samples.parquet, read through the `sample_texts` view
        # (scaler.store.FILE_VIEWS); `row_files` says which steps have which row file. The
        # verdicts keep their table, without the primary key: collect loads a step's rows
        # once, and the index cost more than the rows (benchmarks/RESULTS.md). Texts loaded
        # before are read from the same files they were loaded from.
        """
        CREATE TABLE row_files (step_id VARCHAR, file VARCHAR, PRIMARY KEY (step_id, file));
        INSERT INTO row_files SELECT DISTINCT step_id, 'samples.parquet' FROM samples;
        INSERT INTO row_files SELECT DISTINCT step_id, 'problems.parquet' FROM eval_problems;
        INSERT INTO row_files SELECT DISTINCT step_id, 'pits.parquet' FROM pits;
        CREATE TABLE sample_verdicts AS
        SELECT step_id, problem_id, sample_id, extracted, correct, reason, false_positive,
               first_wrong_step, n_tokens, rule
        FROM samples;
        DROP TABLE samples;
        ALTER TABLE sample_verdicts RENAME TO samples;
        """,
    ),
    (
        "009_sharded_stages",
        # A stage run in shards (runners.shards) is its shards and a merge step that holds what
        # the one step would: the views read each stage's whole results, from its unsharded
        # steps and its merges, never from a shard (a step whose config has a `shard`).
        """
        CREATE VIEW stage_results AS
        SELECT step_id, if(stage = 'merge', config->>'$.stage', stage) AS stage
        FROM steps
        WHERE config->>'$.shard' IS NULL;
        CREATE OR REPLACE VIEW evals AS
        SELECT s.step_id, s.experiment, s.world, s.model, s.source, s.algorithm, s.size, s.seed,
               s.eval_set, m.accuracy, m.false_positive_rate, m.n, s.inputs->>'$.model' AS train_id,
               m.pass_at_k, m.maj_at_k, m.k
        FROM steps s
        JOIN (PIVOT (SELECT step_id, name, value FROM metrics JOIN stage_results r USING (step_id)
                     WHERE r.stage = 'evaluate')
              ON name IN ('accuracy', 'false_positive_rate', 'n', 'pass_at_k', 'maj_at_k', 'k')
              USING first(value)) m
          USING (step_id);
        CREATE OR REPLACE VIEW data_metrics AS
        SELECT v.step_id, v.experiment, v.world, v.model AS sampler, v.source, v.size, v.seed,
               v.inputs->>'$.candidates' AS candidates_id,
               m.k, m.problems, m.pass_rate, m.coverage_at_k, m.diversity_at_k,
               m.false_positive_rate, m.mean_tokens, g.params, g.sampling_flops,
               g.flops_per_problem
        FROM steps v
        JOIN (PIVOT (SELECT step_id, name, value FROM metrics JOIN stage_results r USING (step_id)
                     WHERE r.stage = 'verify')
              ON name IN ('k', 'problems', 'pass_rate', 'coverage_at_k', 'diversity_at_k',
                          'false_positive_rate', 'mean_tokens')
              USING first(value)) m USING (step_id)
        LEFT JOIN (PIVOT (SELECT step_id, name, value FROM metrics
                          JOIN stage_results r USING (step_id) WHERE r.stage = 'sample')
              ON name IN ('params', 'sampling_flops', 'flops_per_problem')
              USING first(value)) g ON g.step_id = v.inputs->>'$.candidates';
        """,
    ),
]
