-- ifc_scan warehouse. All timestamps are UTC (TIMESTAMP without zone). docs/warehouse.md documents every column.
CREATE TABLE IF NOT EXISTS source_files (
  path VARCHAR NOT NULL, sha256 VARCHAR NOT NULL, size BIGINT, mtime TIMESTAMP, kind VARCHAR,
  status VARCHAR NOT NULL, reason VARCHAR, PRIMARY KEY (path, sha256));
CREATE TABLE IF NOT EXISTS ingest_errors (
  path VARCHAR NOT NULL, sha256 VARCHAR, kind VARCHAR, reason VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS scans (
  scan_id VARCHAR PRIMARY KEY, source_sha256 VARCHAR NOT NULL, source_path VARCHAR NOT NULL,
  report_index INTEGER, format VARCHAR, schema_version INTEGER, trivy_version VARCHAR,
  artifact_name VARCHAR, artifact_type VARCHAR, lineage VARCHAR, image_id VARCHAR,
  repo_digests VARCHAR[], repo_tags VARCHAR[], created_at TIMESTAMP, file_mtime TIMESTAMP,
  ci_run_id BIGINT, image_created TIMESTAMP, os_family VARCHAR, os_name VARCHAR,
  lists_suppressed BOOLEAN, n_vulnerabilities INTEGER, n_misconfigurations INTEGER,
  n_secrets INTEGER, n_licenses INTEGER);
CREATE TABLE IF NOT EXISTS scan_vulnerabilities (
  scan_id VARCHAR NOT NULL, target VARCHAR, class VARCHAR, pkg_type VARCHAR,
  vulnerability_id VARCHAR, pkg_name VARCHAR, pkg_path VARCHAR, pkg_id VARCHAR, purl VARCHAR,
  installed_version VARCHAR, fixed_version VARCHAR, status VARCHAR, severity VARCHAR,
  severity_source VARCHAR, title VARCHAR, primary_url VARCHAR, cvss_score DOUBLE,
  published_date TIMESTAMP, suppressed BOOLEAN, suppression_status VARCHAR,
  suppression_statement VARCHAR, suppression_source VARCHAR,
  cve_aliases VARCHAR[]);  -- ifc_scan/intel/aliases.py: NULL for a CVE id, else the CVE ids the report carries
CREATE TABLE IF NOT EXISTS scan_misconfigurations (
  scan_id VARCHAR NOT NULL, target VARCHAR, class VARCHAR, config_type VARCHAR, check_id VARCHAR,
  avd_id VARCHAR, title VARCHAR, message VARCHAR, resolution VARCHAR, severity VARCHAR,
  status VARCHAR, primary_url VARCHAR, start_line INTEGER, end_line INTEGER, suppressed BOOLEAN);
CREATE TABLE IF NOT EXISTS scan_secrets (
  scan_id VARCHAR NOT NULL, target VARCHAR, rule_id VARCHAR, category VARCHAR, severity VARCHAR,
  title VARCHAR, start_line INTEGER, end_line INTEGER, match VARCHAR, suppressed BOOLEAN);
CREATE TABLE IF NOT EXISTS scan_licenses (
  scan_id VARCHAR NOT NULL, target VARCHAR, pkg_name VARCHAR, file_path VARCHAR, name VARCHAR,
  severity VARCHAR, category VARCHAR, confidence DOUBLE, link VARCHAR, suppressed BOOLEAN);
CREATE TABLE IF NOT EXISTS ci_runs (
  run_id BIGINT PRIMARY KEY, run_attempt INTEGER, workflow VARCHAR, workflow_path VARCHAR,
  event VARCHAR, head_branch VARCHAR, head_sha VARCHAR, status VARCHAR, conclusion VARCHAR,
  created_at TIMESTAMP, run_started_at TIMESTAMP, updated_at TIMESTAMP, html_url VARCHAR,
  source_path VARCHAR, unparsed_event_lines INTEGER);
CREATE TABLE IF NOT EXISTS ci_jobs (
  run_id BIGINT NOT NULL, job_id BIGINT NOT NULL, run_attempt INTEGER, name VARCHAR,
  status VARCHAR, conclusion VARCHAR, started_at TIMESTAMP, completed_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS ci_steps (
  run_id BIGINT NOT NULL, job_id BIGINT NOT NULL, number INTEGER, name VARCHAR, status VARCHAR,
  conclusion VARCHAR, started_at TIMESTAMP, completed_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS ci_events (
  run_id BIGINT NOT NULL, job_id BIGINT, job_name VARCHAR, step_number INTEGER, step_name VARCHAR,
  kind VARCHAR NOT NULL, time TIMESTAMP, image_ref VARCHAR, lineage VARCHAR, digest VARCHAR,
  image_id VARCHAR, environment VARCHAR, outcome VARCHAR, scope_severity VARCHAR,
  scope_ignore_unfixed BOOLEAN, scope_vuln_type VARCHAR, scope_trivyignores VARCHAR,
  scan_output VARCHAR, log_file VARCHAR, line_no INTEGER, pattern VARCHAR,
  -- status: what the log says of the event (ok | failed: a denied push, a build that stopped);
  -- masked: its reference carries GitHub's *** secret mask; detail: the evidence in words
  status VARCHAR, masked BOOLEAN, detail VARCHAR);
CREATE TABLE IF NOT EXISTS ci_log_issues (
  run_id BIGINT NOT NULL, log_file VARCHAR, line_no INTEGER, reason VARCHAR, text VARCHAR);
CREATE TABLE IF NOT EXISTS exception_snapshots (
  scope VARCHAR NOT NULL, snapshot_date DATE NOT NULL, file VARCHAR NOT NULL, format VARCHAR,
  sha256 VARCHAR, entries INTEGER);
CREATE TABLE IF NOT EXISTS exceptions (
  scope VARCHAR NOT NULL, snapshot_date DATE NOT NULL, file VARCHAR NOT NULL, format VARCHAR,
  line_no INTEGER, section VARCHAR, vuln_id VARCHAR, expiry TIMESTAMP, expiry_raw VARCHAR,
  declared_expiry TIMESTAMP, reason VARCHAR, paths VARCHAR[], purls VARCHAR[], valid BOOLEAN, invalid_reason VARCHAR,
  sha256 VARCHAR);
-- Exception governance (approvals/ and inventory/approvers.yaml; docs/exception-governance.md)
CREATE TABLE IF NOT EXISTS exception_changes (
  scope VARCHAR NOT NULL, commit_sha VARCHAR NOT NULL, file VARCHAR, path VARCHAR, source VARCHAR, repository VARCHAR,
  landed_at TIMESTAMP NOT NULL, landed_by VARCHAR, committed_at TIMESTAMP, author VARCHAR, author_email VARCHAR,
  pr_number INTEGER, pr_url VARCHAR, title VARCHAR, deleted BOOLEAN, content_sha256 VARCHAR, source_path VARCHAR,
  signature_status VARCHAR, signature_keys VARCHAR[]);
CREATE TABLE IF NOT EXISTS exception_reviews (
  scope VARCHAR NOT NULL, commit_sha VARCHAR NOT NULL, reviewer VARCHAR, email VARCHAR, state VARCHAR,
  submitted_at TIMESTAMP, via VARCHAR);
CREATE TABLE IF NOT EXISTS exception_line_versions (
  scope VARCHAR NOT NULL, commit_sha VARCHAR NOT NULL, line_no INTEGER, vuln_id VARCHAR, change VARCHAR,
  version_sha VARCHAR, history VARCHAR);
CREATE TABLE IF NOT EXISTS approvers (
  login VARCHAR NOT NULL, role VARCHAR NOT NULL, emails VARCHAR[], since TIMESTAMP, until TIMESTAMP, source_path VARCHAR,
  keys VARCHAR[]);
-- Tickets (tickets/<system>/<date>/; docs/tickets-and-delivery.md)
CREATE TABLE IF NOT EXISTS tickets (
  system VARCHAR NOT NULL, key VARCHAR NOT NULL, title VARCHAR, url VARCHAR, state VARCHAR, created_at TIMESTAMP,
  closed_at TIMESTAMP, updated_at TIMESTAMP, vuln_ids VARCHAR[], text VARCHAR, snapshot_date DATE, source_path VARCHAR);
-- Deliveries of published weeks (email, webhooks): what, to whom, when, result
CREATE TABLE IF NOT EXISTS deliveries (
  week VARCHAR NOT NULL, manifest_sha256 VARCHAR, kind VARCHAR NOT NULL, channel VARCHAR NOT NULL, target VARCHAR,
  subject VARCHAR, sent_at TIMESTAMP, attempts INTEGER, result VARCHAR, detail VARCHAR, finding_ids VARCHAR[]);
CREATE TABLE IF NOT EXISTS inventory_deployable (name VARCHAR, lineage VARCHAR NOT NULL, source_path VARCHAR);
CREATE TABLE IF NOT EXISTS inventory_retired (lineage VARCHAR NOT NULL, retired_at TIMESTAMP NOT NULL, source_path VARCHAR);
-- Vulnerability intelligence (issue 31), each file known from its date D (ifc_scan/intel/asof.py: a week ending
-- T uses the newest file with D < T). KEV: CISA's known_exploited_vulnerabilities.json, one row per catalog file
-- in kev_catalogs and one per listed CVE in kev_entries. EPSS: FIRST's daily epss_scores-YYYY-MM-DD.csv.gz; every
-- file is recorded in epss_files, but only the newest file of each ISO week keeps its rows in epss_scores (the
-- only file any week can use: the newest before the week's end), so a year holds 52 files' rows, not 365.
CREATE TABLE IF NOT EXISTS kev_catalogs (
  catalog_date DATE NOT NULL, catalog_version VARCHAR, date_released TIMESTAMP, entries INTEGER,
  source_path VARCHAR NOT NULL, source_sha256 VARCHAR);
CREATE TABLE IF NOT EXISTS kev_entries (
  catalog_date DATE NOT NULL, cve_id VARCHAR NOT NULL, vendor_project VARCHAR, product VARCHAR,
  vulnerability_name VARCHAR, date_added DATE, due_date DATE, known_ransomware_campaign_use VARCHAR,
  required_action VARCHAR, source_path VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS epss_files (
  score_date DATE NOT NULL, model_version VARCHAR, rows_read INTEGER, rows_kept BOOLEAN,
  source_path VARCHAR NOT NULL, source_sha256 VARCHAR);
CREATE TABLE IF NOT EXISTS epss_scores (
  score_date DATE NOT NULL, cve VARCHAR NOT NULL, epss DOUBLE, percentile DOUBLE);
-- Derived tables (lifecycle and weekly stages). Rebuilt from the raw tables above when
-- ifc_scan/warehouse/db.py DERIVED_VERSION changes, so a warehouse of an older release upgrades itself.
CREATE TABLE IF NOT EXISTS derived_meta (key VARCHAR PRIMARY KEY, value VARCHAR);
-- as_of NULL: the lifecycle. as_of = T: a lineage's lifecycle as known at week end T, stored only where a later
-- observation changed the past (lifecycle_corrections; docs/warehouse.md explains when).
CREATE TABLE IF NOT EXISTS findings (
  finding_id VARCHAR NOT NULL, as_of TIMESTAMP, lineage VARCHAR, vulnerability_id VARCHAR, pkg_name VARCHAR,
  pkg_path VARCHAR, detected_at TIMESTAMP, cause VARCHAR, purl VARCHAR, target VARCHAR, title VARCHAR);
CREATE TABLE IF NOT EXISTS finding_events (
  finding_id VARCHAR, as_of TIMESTAMP, seq INTEGER, time TIMESTAMP, kind VARCHAR, reason VARCHAR, severity VARCHAR,
  due_at TIMESTAMP, image_id VARCHAR, scan_id VARCHAR, target VARCHAR, purl VARCHAR, title VARCHAR,
  last_time TIMESTAMP, presences INTEGER);
CREATE TABLE IF NOT EXISTS timeline_moments (
  lineage VARCHAR, as_of TIMESTAMP, seq INTEGER, time TIMESTAMP, image_id VARCHAR, scan_id VARCHAR, via_deploy BOOLEAN);
CREATE TABLE IF NOT EXISTS current_images (
  lineage VARCHAR, as_of TIMESTAMP, seq INTEGER, since TIMESTAMP, image_id VARCHAR);
CREATE TABLE IF NOT EXISTS lifecycle_corrections (lineage VARCHAR NOT NULL, as_of TIMESTAMP NOT NULL, reason VARCHAR);
-- Where each lineage's stored walk stopped, so the next build extends it instead of walking all history again
-- (ifc_scan/lifecycle/incremental.py): the time of its last scan or production deploy walked, a digest of
-- everything the walk read up to then, the walker's current image, and how many moments and images it stored.
CREATE TABLE IF NOT EXISTS lifecycle_lineage_state (
  lineage VARCHAR NOT NULL, processed_until TIMESTAMP, inputs_sha256 VARCHAR, current_image VARCHAR,
  has_deploy BOOLEAN, moments INTEGER, images INTEGER, corrections_sha256 VARCHAR);
-- Each finding of the main lifecycle as the walker holds it after its last event (seq last_seq), with what its
-- events say of it then (lifecycle/state.py reads a week's start from it instead of aggregating all history)
CREATE TABLE IF NOT EXISTS lifecycle_finding_state (
  finding_id VARCHAR NOT NULL, lineage VARCHAR, vulnerability_id VARCHAR, pkg_name VARCHAR, pkg_path VARCHAR,
  detected_at TIMESTAMP, cause VARCHAR, purl VARCHAR, target VARCHAR, title VARCHAR, cls VARCHAR, fixed VARCHAR,
  severity VARCHAR, due_at TIMESTAMP, is_open BOOLEAN, last_image VARCHAR, last_seq INTEGER, last_seen_scan VARCHAR,
  last_close_time TIMESTAMP, last_close_reason VARCHAR, last_close_scan VARCHAR);
CREATE TABLE IF NOT EXISTS weekly_kpis (
  week VARCHAR PRIMARY KEY, period_start TIMESTAMP, period_end TIMESTAMP, inputs_manifest_sha256 VARCHAR,
  policy_sha256 VARCHAR, verdict VARCHAR, failing_controls VARCHAR[], critical_in_prod INTEGER,
  critical_in_prod_excepted INTEGER, build_gate_pct DOUBLE, nightly_pct DOUBLE, mttr_critical_mean DOUBLE,
  mttr_high_mean DOUBLE, open_overdue INTEGER, open_backlog INTEGER, new_findings INTEGER, remediated INTEGER,
  kpis_json VARCHAR, populations_json_zlib BLOB, data_quality_json VARCHAR);
-- Every ingested file with the time from which it is evidence (scans by observed_at, CI files by their run's
-- creation, snapshots by their date, the inventory always): a week's inputs are the rows before its end T,
-- in (path, sha256) order. Written by the weekly stage, read by the report stage for the manifest.
CREATE TABLE IF NOT EXISTS input_catalog (
  path VARCHAR NOT NULL, sha256 VARCHAR, size BIGINT, kind VARCHAR, evidence_from TIMESTAMP NOT NULL);
