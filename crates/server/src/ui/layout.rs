//! What every signed-in page shares: the header with the project switcher and the navigation,
//! the sign-out form, and a one-line notice after an action. The navigation is one list, so a
//! new section is one more entry.

use askama::Template;
use axum::response::{Html, IntoResponse, Redirect, Response};
use meetwire_core::time::Timestamp;
use meetwire_store::ProjectSummary;

use super::error::UiResult;
use super::session::Member;

/// The sections of a project, in navigation order.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Dashboard,
    Bots,
    Calendars,
    Deliveries,
    Webhooks,
    ApiKeys,
}

impl Section {
    const ALL: [Section; 6] = [
        Section::Dashboard,
        Section::Bots,
        Section::Calendars,
        Section::Deliveries,
        Section::Webhooks,
        Section::ApiKeys,
    ];

    fn label(self) -> &'static str {
        match self {
            Section::Dashboard => "Dashboard",
            Section::Bots => "Bots",
            Section::Calendars => "Calendars",
            Section::Deliveries => "Deliveries",
            Section::Webhooks => "Settings · Webhooks",
            Section::ApiKeys => "Settings · API keys",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Section::Dashboard => "dashboard",
            Section::Bots => "bots",
            Section::Calendars => "calendars",
            Section::Deliveries => "deliveries",
            Section::Webhooks => "settings/webhooks",
            Section::ApiKeys => "settings/api-keys",
        }
    }
}

pub struct NavItem {
    pub label: &'static str,
    pub href: String,
    pub current: bool,
}

pub struct ProjectLink {
    pub name: String,
    pub href: String,
    pub current: bool,
}

/// The layout's data.
pub struct Chrome {
    pub email: String,
    pub csrf: String,
    pub project_name: String,
    pub projects: Vec<ProjectLink>,
    pub nav: Vec<NavItem>,
    pub notice: Option<&'static str>,
}

/// The URL of a project's page.
pub fn project_href(project_id: &str, rest: &str) -> String {
    format!("/projects/{project_id}/{rest}")
}

pub fn section_href(project_id: &str, section: Section) -> String {
    project_href(project_id, section.path())
}

impl Chrome {
    pub fn new(member: &Member, section: Section, notice: Option<&'static str>) -> Chrome {
        let link = |p: &ProjectSummary| ProjectLink {
            name: p.name.clone(),
            href: section_href(&p.id, section),
            current: p.id == member.project.id,
        };
        Chrome {
            email: member.user.email.clone(),
            csrf: member.user.csrf.clone(),
            project_name: member.project.name.clone(),
            projects: member.projects.iter().map(link).collect(),
            nav: Section::ALL
                .iter()
                .map(|s| NavItem {
                    label: s.label(),
                    href: section_href(&member.project.id, *s),
                    current: *s == section,
                })
                .collect(),
            notice,
        }
    }
}

/// A rendered page.
pub fn render(page: &impl Template) -> UiResult<Response> {
    Ok(Html(page.render()?).into_response())
}

/// The one-line notices shown after an action, by the code its redirect carries (a code, not
/// text, so a link cannot make the page say anything else).
pub fn notice(code: Option<&str>) -> Option<&'static str> {
    Some(match code? {
        "created" => "Webhook created.",
        "saved" => "Webhook saved.",
        "deleted" => "Webhook deleted.",
        "enabled" => "Webhook enabled.",
        "disabled" => "Webhook disabled.",
        "rotated" => {
            "Signing secret rotated. The previous one keeps signing until its overlap ends."
        }
        "standard" => "Standard Webhooks setting saved.",
        "sync-queued" => "Sync queued: the calendar is read again in a moment.",
        "resent-failed" => "Every failed delivery since then is being sent again.",
        "revoked" => "API key revoked. It stops working within 30 seconds.",
        "resent" => "Delivery queued again with a fresh attempt budget.",
        _ => return None,
    })
}

/// After a successful form: back to `href` with a notice (post/redirect/get).
pub fn done(href: &str, code: &str) -> Response {
    let join = if href.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{href}{join}notice={code}")).into_response()
}

/// A time as people read it: to the second, in UTC.
pub fn when(t: &Timestamp) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}
