//! The `github` interface's requests.

use serde_json::{Value, json};

use super::Request;
use crate::bindings::envmgr::environments::github::{
    NewDeployment, NewDeploymentStatus, Repository,
};
use crate::bindings::json::Recordable;
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
    fn json(&self) -> Value {
        json!({ "installation-id": self.installation_id })
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
    fn json(&self) -> Value {
        json!({ "installation-id": self.installation_id, "repo": self.repo.record(), "issue-number": self.issue_number, "marker": self.marker })
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
    fn json(&self) -> Value {
        json!({ "installation-id": self.installation_id, "repo": self.repo.record(), "issue-number": self.issue_number, "body": self.body })
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
    fn json(&self) -> Value {
        json!({ "installation-id": self.installation_id, "repo": self.repo.record(), "comment-id": self.comment_id, "body": self.body })
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
            fn json(&self) -> Value {
                json!({ "installation-id": self.installation_id, "repo": self.repo.record(), $field: self.id })
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
            fn json(&self) -> Value {
                json!({ "installation-id": self.installation_id, "repo": self.repo.record(), stringify!($field): self.$field })
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
    fn json(&self) -> Value {
        json!({ "installation-id": self.installation_id, "repo": self.repo.record() })
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
    fn json(&self) -> Value {
        json!({ "installation-id": self.installation_id, "repo": self.repo.record(), "sha": self.sha, "environment": self.environment, "task": self.task })
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
    fn json(&self) -> Value {
        json!({ "installation-id": self.installation_id, "repo": self.repo.record(), "deployment": self.deployment.record() })
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
    fn json(&self) -> Value {
        json!({ "installation-id": self.installation_id, "repo": self.repo.record(), "deployment-id": self.deployment_id, "status": self.status.record() })
    }
}
