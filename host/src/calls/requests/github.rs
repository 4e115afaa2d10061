//! The `github` interface's requests.

use super::Request;
use crate::bindings::envmgr::environments::github::{
    NewDeployment, NewDeploymentStatus, Repository,
};
use crate::bindings::json::{Object, write_object};
use crate::calls::Call;
use crate::capabilities::github::{show, state_name};

pub struct Authenticate {
    pub installation_id: u64,
}

impl Request for Authenticate {
    const CALL: Call = Call::GithubAuthenticate;
    fn text(&self) -> String {
        format!("installation={}", self.installation_id)
    }
    fn write_json(&self, out: &mut Vec<u8>) {
        Object::new(out)
            .field("installation-id", &self.installation_id)
            .end();
    }
}

pub struct ListComments<'a> {
    pub installation_id: u64,
    pub repo: &'a Repository,
    pub issue_number: u64,
    pub marker: &'a str,
}

impl Request for ListComments<'_> {
    const CALL: Call = Call::GithubListComments;
    fn text(&self) -> String {
        format!(
            "{}#{} marker={:?}",
            show(self.repo),
            self.issue_number,
            self.marker
        )
    }
    fn write_json(&self, out: &mut Vec<u8>) {
        Object::new(out)
            .field("installation-id", &self.installation_id)
            .field("issue-number", &self.issue_number)
            .field("marker", self.marker)
            .field("repo", self.repo)
            .end();
    }
}

pub struct CreateComment<'a> {
    pub installation_id: u64,
    pub repo: &'a Repository,
    pub issue_number: u64,
    pub body: &'a str,
}

impl Request for CreateComment<'_> {
    const CALL: Call = Call::GithubCreateComment;
    fn text(&self) -> String {
        format!(
            "{}#{} body={:?}",
            show(self.repo),
            self.issue_number,
            self.body
        )
    }
    fn write_json(&self, out: &mut Vec<u8>) {
        Object::new(out)
            .field("body", self.body)
            .field("installation-id", &self.installation_id)
            .field("issue-number", &self.issue_number)
            .field("repo", self.repo)
            .end();
    }
}

pub struct UpdateComment<'a> {
    pub installation_id: u64,
    pub repo: &'a Repository,
    pub comment_id: u64,
    pub body: &'a str,
}

impl Request for UpdateComment<'_> {
    const CALL: Call = Call::GithubUpdateComment;
    fn text(&self) -> String {
        format!(
            "{} comment={} body={:?}",
            show(self.repo),
            self.comment_id,
            self.body
        )
    }
    fn write_json(&self, out: &mut Vec<u8>) {
        Object::new(out)
            .field("body", self.body)
            .field("comment-id", &self.comment_id)
            .field("installation-id", &self.installation_id)
            .field("repo", self.repo)
            .end();
    }
}

/// A call on one repository and one id of it: the id's name as the
/// transcript shows it and as the WIT names the parameter.
macro_rules! by_id {
    ($name:ident, $call:expr, $shown:literal, $field:literal) => {
        pub struct $name<'a> {
            pub installation_id: u64,
            pub repo: &'a Repository,
            pub id: u64,
        }

        impl Request for $name<'_> {
            const CALL: Call = $call;
            fn text(&self) -> String {
                format!(concat!("{} ", $shown, "={}"), show(self.repo), self.id)
            }
            fn write_json(&self, out: &mut Vec<u8>) {
                // Every id's name sorts before `installation-id`.
                Object::new(out)
                    .field($field, &self.id)
                    .field("installation-id", &self.installation_id)
                    .field("repo", self.repo)
                    .end();
            }
        }
    };
}

by_id!(
    DeleteComment,
    Call::GithubDeleteComment,
    "comment",
    "comment-id"
);
by_id!(
    ListDeploymentStatuses,
    Call::GithubListDeploymentStatuses,
    "deployment",
    "deployment-id"
);
by_id!(
    DeleteDeployment,
    Call::GithubDeleteDeployment,
    "deployment",
    "deployment-id"
);

/// A call on one repository and one name in it: the name's field as the
/// transcript shows it and as the WIT names the parameter.
macro_rules! by_name {
    ($name:ident, $call:expr, $field:ident, $shown:literal) => {
        pub struct $name<'a> {
            pub installation_id: u64,
            pub repo: &'a Repository,
            pub $field: &'a str,
        }

        impl Request for $name<'_> {
            const CALL: Call = $call;
            fn text(&self) -> String {
                format!(concat!("{} ", $shown, "={}"), show(self.repo), self.$field)
            }
            fn write_json(&self, out: &mut Vec<u8>) {
                write_object(
                    &mut [
                        (stringify!($field), &self.$field),
                        ("installation-id", &self.installation_id),
                        ("repo", self.repo),
                    ],
                    out,
                );
            }
        }
    };
}

by_name!(
    ListOpenPullRequests,
    Call::GithubListOpenPullRequests,
    head,
    "head"
);
by_name!(
    DeleteEnvironment,
    Call::GithubDeleteEnvironment,
    name,
    "environment"
);

pub struct CreateInstallationToken<'a> {
    pub installation_id: u64,
    pub repo: &'a Repository,
}

impl Request for CreateInstallationToken<'_> {
    const CALL: Call = Call::GithubCreateInstallationToken;
    fn text(&self) -> String {
        format!(
            "installation={} repo={}",
            self.installation_id,
            show(self.repo)
        )
    }
    fn write_json(&self, out: &mut Vec<u8>) {
        Object::new(out)
            .field("installation-id", &self.installation_id)
            .field("repo", self.repo)
            .end();
    }
}

pub struct FindDeployments<'a> {
    pub installation_id: u64,
    pub repo: &'a Repository,
    pub sha: &'a str,
    pub environment: &'a str,
    pub task: &'a str,
}

impl Request for FindDeployments<'_> {
    const CALL: Call = Call::GithubFindDeployments;
    fn text(&self) -> String {
        format!(
            "{} sha={} environment={:?} task={:?}",
            show(self.repo),
            self.sha,
            self.environment,
            self.task
        )
    }
    fn write_json(&self, out: &mut Vec<u8>) {
        Object::new(out)
            .field("environment", self.environment)
            .field("installation-id", &self.installation_id)
            .field("repo", self.repo)
            .field("sha", self.sha)
            .field("task", self.task)
            .end();
    }
}

pub struct CreateDeployment<'a> {
    pub installation_id: u64,
    pub repo: &'a Repository,
    pub deployment: &'a NewDeployment,
}

impl Request for CreateDeployment<'_> {
    const CALL: Call = Call::GithubCreateDeployment;
    fn text(&self) -> String {
        let d = self.deployment;
        format!(
            "{} sha={} environment={:?} task={:?} payload={} transient={} production={}",
            show(self.repo),
            d.sha,
            d.environment,
            d.task,
            d.payload_json,
            d.transient_environment,
            d.production_environment
        )
    }
    fn write_json(&self, out: &mut Vec<u8>) {
        Object::new(out)
            .field("deployment", self.deployment)
            .field("installation-id", &self.installation_id)
            .field("repo", self.repo)
            .end();
    }
}

pub struct CreateDeploymentStatus<'a> {
    pub installation_id: u64,
    pub repo: &'a Repository,
    pub deployment_id: u64,
    pub status: &'a NewDeploymentStatus,
}

impl Request for CreateDeploymentStatus<'_> {
    const CALL: Call = Call::GithubCreateDeploymentStatus;
    fn text(&self) -> String {
        let s = self.status;
        format!(
            "{} deployment={} state={} description={:?} environment_url={:?} log_url={:?}",
            show(self.repo),
            self.deployment_id,
            state_name(s.state),
            s.description,
            s.environment_url,
            s.log_url
        )
    }
    fn write_json(&self, out: &mut Vec<u8>) {
        Object::new(out)
            .field("deployment-id", &self.deployment_id)
            .field("installation-id", &self.installation_id)
            .field("repo", self.repo)
            .field("status", self.status)
            .end();
    }
}
