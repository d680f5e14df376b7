//! What a cycle saw in the cluster and what the group and topic filters kept of it: counted
//! for the status page, and watched for filters that match nothing (a warning, logged when
//! it starts and when it ends, not every cycle).

use std::collections::HashSet;

use crate::config::ClusterSettings;
use crate::kafka::{GroupListing, Metadata};

/// Groups and topics of one cycle, before and after the filters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Groups the brokers listed in this cycle.
    pub groups_seen: usize,
    /// Of those, groups the group filters keep.
    pub groups_monitored: usize,
    /// Topics in the cluster's metadata.
    pub topics_seen: usize,
    /// Of those, topics the topic filters keep.
    pub topics_monitored: usize,
    /// Topics seen that are not internal (`__consumer_offsets`, ...).
    pub user_topics_seen: usize,
}

impl Coverage {
    pub fn groups_filtered_out(&self) -> usize {
        self.groups_seen.saturating_sub(self.groups_monitored)
    }

    pub fn topics_filtered_out(&self) -> usize {
        self.topics_seen.saturating_sub(self.topics_monitored)
    }

    /// Groups exist, and the group filters keep none of them.
    pub fn groups_unmatched(&self) -> bool {
        self.groups_seen > 0 && self.groups_monitored == 0
    }

    /// Topics other than internal ones exist, and the topic filters keep none. A cluster
    /// with only internal topics has nothing to watch yet, whatever the filters.
    pub fn topics_unmatched(&self) -> bool {
        self.user_topics_seen > 0 && self.topics_monitored == 0
    }

    /// The topic counts of `meta` under `settings`' topic filters.
    pub(super) fn count_topics(&mut self, meta: &Metadata, settings: &ClusterSettings) {
        self.topics_seen = meta.topics.len();
        self.topics_monitored = meta
            .topics
            .keys()
            .filter(|t| settings.topic_allowed(t))
            .count();
        self.user_topics_seen = meta.topics.values().filter(|t| !t.internal).count();
    }

    /// The group counts of `listed` (a group may be listed by two brokers while its
    /// coordinator moves) under `settings`' group filters.
    pub(super) fn count_groups<'a>(
        &mut self,
        listed: impl Iterator<Item = &'a GroupListing>,
        settings: &ClusterSettings,
    ) {
        let ids: HashSet<&str> = listed.map(|g| g.group_id.as_str()).collect();
        self.groups_seen = ids.len();
        self.groups_monitored = ids.iter().filter(|g| settings.group_allowed(g)).count();
    }
}

/// A change of the filters' match worth a log line.
#[derive(Debug, PartialEq, Eq)]
pub enum FilterChange {
    GroupsUnmatched,
    GroupsMatchAgain,
    TopicsUnmatched,
    TopicsMatchAgain,
}

/// Whether the filters matched nothing at the last published cycle.
#[derive(Debug, Default)]
pub struct FilterWatch {
    groups_unmatched: bool,
    topics_unmatched: bool,
}

impl FilterWatch {
    /// What changed since the last published cycle. A cycle that saw no group (or no
    /// topic but internal ones) tells nothing about the filters: the state stays, so a
    /// broker that could not list its groups for a cycle does not end a warning.
    pub fn changes(&mut self, c: &Coverage) -> Vec<FilterChange> {
        let mut out = Vec::new();
        if c.groups_seen > 0 && c.groups_unmatched() != self.groups_unmatched {
            self.groups_unmatched = c.groups_unmatched();
            out.push(if self.groups_unmatched {
                FilterChange::GroupsUnmatched
            } else {
                FilterChange::GroupsMatchAgain
            });
        }
        if c.user_topics_seen > 0 && c.topics_unmatched() != self.topics_unmatched {
            self.topics_unmatched = c.topics_unmatched();
            out.push(if self.topics_unmatched {
                FilterChange::TopicsUnmatched
            } else {
                FilterChange::TopicsMatchAgain
            });
        }
        out
    }

    /// Log what changed since the last published cycle.
    pub fn log(&mut self, cluster: &str, c: &Coverage) {
        for change in self.changes(c) {
            match change {
                FilterChange::GroupsUnmatched => tracing::warn!(
                    cluster, groups_seen = c.groups_seen,
                    "group filters match nothing: no group is monitored; check group_whitelist and group_blacklist (unanchored regexes)"
                ),
                FilterChange::GroupsMatchAgain => tracing::info!(
                    cluster, groups_monitored = c.groups_monitored, "group filters match groups again"
                ),
                FilterChange::TopicsUnmatched => tracing::warn!(
                    cluster, topics_seen = c.topics_seen,
                    "topic filters match nothing: no topic is monitored; check topic_whitelist and topic_blacklist (unanchored regexes)"
                ),
                FilterChange::TopicsMatchAgain => tracing::info!(
                    cluster, topics_monitored = c.topics_monitored, "topic filters match topics again"
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coverage(groups: (usize, usize), topics: (usize, usize, usize)) -> Coverage {
        Coverage {
            groups_seen: groups.0,
            groups_monitored: groups.1,
            topics_seen: topics.0,
            topics_monitored: topics.1,
            user_topics_seen: topics.2,
        }
    }

    #[test]
    fn a_warning_when_filters_start_matching_nothing_and_a_line_when_they_match_again() {
        use FilterChange::*;
        let mut w = FilterWatch::default();
        // An empty cluster: nothing to match, nothing to say.
        assert_eq!(w.changes(&coverage((0, 0), (1, 0, 0))), []);
        assert_eq!(
            w.changes(&coverage((3, 0), (2, 0, 1))),
            [GroupsUnmatched, TopicsUnmatched]
        );
        // Still nothing matched, with other counts: said once already.
        assert_eq!(w.changes(&coverage((5, 0), (4, 0, 3))), []);
        // A cycle that listed no group and saw no user topic says nothing either way.
        assert_eq!(w.changes(&coverage((0, 0), (1, 0, 0))), []);
        assert_eq!(w.changes(&coverage((5, 1), (4, 0, 3))), [GroupsMatchAgain]);
        assert_eq!(w.changes(&coverage((5, 1), (4, 2, 3))), [TopicsMatchAgain]);
        assert_eq!(w.changes(&coverage((5, 1), (4, 2, 3))), []);
    }

    #[test]
    fn counts_apply_the_filters() {
        use crate::kafka::GroupType;
        let mut settings = ClusterSettings::new("c", vec!["b:9092".into()]);
        settings.group_whitelist = vec![regex::Regex::new("^app").expect("regex")];
        settings.topic_blacklist = vec![regex::Regex::new("^__").expect("regex")];
        let listing = |id: &str| GroupListing {
            group_id: id.into(),
            protocol_type: "consumer".into(),
            state: None,
            group_type: GroupType::Classic,
        };
        let listed = [
            listing("app-1"),
            listing("app-1"),
            listing("app-2"),
            listing("x"),
        ];
        let mut meta = Metadata::default();
        for (name, internal) in [("orders", false), ("__consumer_offsets", true)] {
            let info = crate::kafka::cluster::TopicInfo {
                internal,
                ..Default::default()
            };
            meta.topics.insert(name.into(), info);
        }
        let mut c = Coverage::default();
        c.count_groups(listed.iter(), &settings);
        c.count_topics(&meta, &settings);
        assert_eq!(c, coverage((3, 2), (2, 1, 1)));
        assert_eq!((c.groups_filtered_out(), c.topics_filtered_out()), (1, 1));
    }
}
