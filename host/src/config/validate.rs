//! What the configuration must satisfy, by what a command uses of it
//! ([`Uses`](super::Uses)): errors name the key and its bounds.

use anyhow::bail;

use super::{HOST_CONFIG_KEYS, Settings};

impl Settings {
    /// The queues' settings, and their visibility against the lease.
    pub(super) fn validate_queues(&self) -> anyhow::Result<()> {
        if self.queues.is_empty() {
            bail!("config key `queues`: at least one queue is needed");
        }
        for (logical, queue) in &self.queues {
            if !(0..=20).contains(&queue.wait_seconds) {
                bail!("config key `queues.{logical}.wait_seconds`: must be 0 to 20");
            }
            if queue.max_in_flight == 0 {
                bail!("config key `queues.{logical}.max_in_flight`: must be at least 1");
            }
            if !(1..=43_200).contains(&queue.visibility_timeout_seconds) {
                bail!(
                    "config key `queues.{logical}.visibility_timeout_seconds`: must be 1 to 43200"
                );
            }
            if queue.max_receive_count == 0 {
                bail!("config key `queues.{logical}.max_receive_count`: must be at least 1");
            }
            if !(16 << 10..=1 << 20).contains(&queue.max_message_bytes) {
                bail!(
                    "config key `queues.{logical}.max_message_bytes`: 16384 to 1048576 (SQS's limits, with room for envmgr's attributes)"
                );
            }
        }
        // A crashed holder's lease has run out when its message becomes
        // visible again.
        for (logical, queue) in &self.queues {
            if (queue.visibility_timeout_seconds as u64) < self.lease.ttl_seconds {
                bail!(
                    "config key `queues.{logical}.visibility_timeout_seconds`: at least `lease.ttl_seconds` ({})",
                    self.lease.ttl_seconds
                );
            }
        }
        Ok(())
    }

    /// What running logic takes: limits, the lease, the logic's config,
    /// logic versions, recording and the services.
    pub(super) fn validate_serving(&self) -> anyhow::Result<()> {
        // A live holder never outlasts its lease (its message ends by the
        // deadline, judged on clocks up to the skew apart).
        let floor = self.limits.deadline_seconds + self.lease.clock_skew_seconds;
        if self.lease.ttl_seconds < floor {
            bail!(
                "config key `lease.ttl_seconds`: at least `limits.deadline_seconds` + `lease.clock_skew_seconds` ({floor})"
            );
        }
        for key in HOST_CONFIG_KEYS {
            if self.logic_config.contains_key(key) {
                bail!("config key `logic_config.{key}`: set by the host, not the config");
            }
        }
        if !(100..=60_000).contains(&self.logic.poll_ms) {
            bail!("config key `logic.poll_ms`: 100 to 60000");
        }
        if self.logic.canary_min_messages == 0
            || self.logic.canary_window < self.logic.canary_min_messages
        {
            bail!("config key `logic.canary_min_messages`: between 1 and `logic.canary_window`");
        }
        if !(0.0..1.0).contains(&self.logic.canary_margin) {
            bail!("config key `logic.canary_margin`: from 0 up to 1");
        }
        if self.limits.memory_mib < 8 {
            bail!("config key `limits.memory_mib`: at least 8");
        }
        if !(0.0..=1.0).contains(&self.record.sample) {
            bail!("config key `record.sample`: a share from 0.0 to 1.0");
        }
        if self.record.retention_hours == 0 || self.record.retention_hours > 24 * 90 {
            bail!("config key `record.retention_hours`: 1 to 2160 (90 days)");
        }
        let dead_letter_days = crate::queue::DEAD_LETTER_RETENTION.as_secs() / 86_400;
        if self.local.retention_days < dead_letter_days {
            bail!(
                "config key `local.retention_days`: at least {dead_letter_days} (as long as a dead letter may come back)"
            );
        }
        if self.kms.previous_key_ids.contains(&self.kms.key_id) {
            bail!(
                "config key `kms.previous_key_ids`: the keys being moved from, not `kms.key_id` itself"
            );
        }
        if self.logic.keep_installed_hours > 24 * 365 {
            bail!("config key `logic.keep_installed_hours`: at most 8760 (a year)");
        }
        if self.record.queue == 0 {
            bail!("config key `record.queue`: at least 1");
        }
        if let Some(segment) = &self.segment {
            if segment.batch_size == 0 || segment.buffer < segment.batch_size {
                bail!("config key `segment.batch_size`: between 1 and `segment.buffer`");
            }
            if segment.flush_interval_ms == 0 {
                bail!("config key `segment.flush_interval_ms`: at least 1");
            }
        }
        if let Some(runtime) = &self.runtime
            && runtime.retries > 10
        {
            bail!("config key `runtime.retries`: at most 10");
        }
        if let Some(github) = &self.github {
            crate::capabilities::github::app::check_runtime_token_permissions(
                &github.runtime_token_permissions,
            )
            .map_err(anyhow::Error::msg)?;
            if github.write_spacing_ms > 10_000 {
                bail!("config key `github.write_spacing_ms`: 0 to 10000");
            }
            if github.max_wait_ms > self.limits.deadline_seconds * 1_000 {
                bail!(
                    "config key `github.max_wait_ms`: at most `limits.deadline_seconds` in milliseconds ({})",
                    self.limits.deadline_seconds * 1_000
                );
            }
        }
        Ok(())
    }
}
