//! The server-rendered page (no JavaScript): the list by state and deadline, one proposal with
//! its forms, and the audit trail. German and English. Accessibility: one `h1` per page, headed
//! sections, a skip link, every control labelled, radio groups in a `fieldset` with a `legend`,
//! tables with captions and header cells, "overdue" said in words (not only in colour), a visible
//! focus outline, and the document order is the tab order (no `tabindex`).

use chrono::{DateTime, SecondsFormat, Utc};

use crate::store::{AuditEntry, Record, StoredVote};
use crate::workflow::{self, State};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    De,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::De => "de",
            Lang::En => "en",
        }
    }

    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "de" => Some(Lang::De),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The first of de/en in `Accept-Language` by quality; German when neither is named (the
    /// inbox serves German sites).
    pub fn negotiate(accept_language: &str) -> Lang {
        let mut best: Option<(f32, Lang)> = None;
        for part in accept_language.split(',') {
            let mut it = part.split(';');
            let tag = it.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = it
                .find_map(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|v| v.parse::<f32>().ok())
                })
                .unwrap_or(1.0);
            let lang = match tag.split('-').next() {
                Some("de") => Lang::De,
                Some("en") => Lang::En,
                _ => continue,
            };
            if best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, lang));
            }
        }
        best.map(|(_, l)| l).unwrap_or(Lang::De)
    }
}

/// Every text of the page, in both languages.
pub fn t(lang: Lang, key: &str) -> &'static str {
    let (de, en) = match key {
        "skip" => ("Zum Inhalt springen", "Skip to content"),
        "inbox" => ("Antragseingang", "Proposal inbox"),
        "proposals" => ("Anträge", "Proposals"),
        "language" => ("Sprache", "Language"),
        "logout" => ("Abmelden", "Log out"),
        "login" => ("Anmelden", "Log in"),
        "login_needed" => ("Bitte melden Sie sich an.", "Please log in."),
        "no_login" => (
            "Die Anmeldung ist nicht eingerichtet (kein OIDC konfiguriert).",
            "Login is not set up (no OIDC configured).",
        ),
        "none" => ("Keine Anträge.", "No proposals."),
        "id" => ("Kennung", "Id"),
        "title" => ("Titel", "Title"),
        "received" => ("Eingegangen", "Received"),
        "deadline" => ("Frist", "Deadline"),
        "overdue" => ("überfällig", "overdue"),
        "state" => ("Status", "State"),
        "applicant" => ("Antragsteller:in", "Applicant"),
        "institution" => ("Einrichtung", "Institution"),
        "requested" => ("Angefragte Daten", "Requested data"),
        "sites" => ("Standorte", "Sites"),
        "summary" => ("Zusammenfassung", "Summary"),
        "details" => ("Angaben", "Details"),
        "diz_check" => ("DIZ-Prüfung", "DIZ check"),
        "diz_outcome" => ("Ergebnis der DIZ-Prüfung", "Outcome of the DIZ check"),
        "dizApprove" => ("Lieferbar", "Can be delivered"),
        "dizApproveWithConditions" => {
            ("Lieferbar mit Auflagen", "Can be delivered with conditions")
        }
        "dizExclude" => (
            "Nicht lieferbar (Standort ausschließen)",
            "Cannot be delivered (exclude site)",
        ),
        "diz_text" => ("Auflagen oder Begründung", "Conditions or reason"),
        "data_amount" => ("Zugesagte Datenmenge", "Promised data amount"),
        "data_amount_input" => (
            "Lieferbare Datenmenge (Anzahl Patient:innen; Pflicht bei Lieferbarkeit)",
            "Data the site can deliver (number of patients; required unless excluded)",
        ),
        "patients" => ("Patient:innen", "patients"),
        "vote" => ("Abstimmung des UAC", "UAC vote"),
        "your_vote" => ("Ihre Stimme", "Your vote"),
        "approve" => ("Zustimmen", "Approve"),
        "approveWithConditions" => ("Zustimmen mit Auflagen", "Approve with conditions"),
        "decline" => ("Ablehnen", "Decline"),
        "conditions" => ("Auflagen", "Conditions"),
        "reason" => (
            "Begründung (bei Ablehnung Pflicht)",
            "Reason (required to decline)",
        ),
        "submit_vote" => ("Stimme abgeben", "Cast vote"),
        "submit" => ("Speichern", "Save"),
        "replace_note" => (
            "Eine neue Stimme ersetzt Ihre bisherige, solange nicht entschieden ist.",
            "A new vote replaces your earlier one until the decision is taken.",
        ),
        "not_member" => (
            "Nur Mitglieder des UAC können abstimmen.",
            "Only members of the UAC can vote.",
        ),
        "not_diz" => (
            "Nur die Mitarbeitenden des DIZ erfassen diesen Schritt.",
            "Only the DIZ staff record this step.",
        ),
        "votes" => ("Stimmen", "Votes"),
        "member" => ("Mitglied", "Member"),
        "choice" => ("Stimme", "Vote"),
        "at" => ("Zeitpunkt", "Time"),
        "quorum" => ("Quorum", "Quorum"),
        "answer" => (
            "Antwort der Antragsteller:in auf die Auflagen",
            "The applicant's answer to the conditions",
        ),
        "conditionsAccepted" => ("Auflagen angenommen", "Conditions accepted"),
        "conditionsDeclined" => ("Auflagen abgelehnt", "Conditions declined"),
        "decision" => ("Entscheidung", "Decision"),
        "decided_at" => ("Entschieden am", "Decided at"),
        "audit" => ("Protokoll", "Audit trail"),
        "actor" => ("Wer", "Who"),
        "action" => ("Was", "What"),
        "detail" => ("Einzelheiten", "Detail"),
        "error" => ("Fehler", "Error"),
        "back" => ("Zurück zum Antrag", "Back to the proposal"),
        "all" => ("Zur Übersicht", "To the list"),
        "logged_in_as" => ("Angemeldet als", "Logged in as"),
        "DIZ_CHECK" => ("DIZ-Prüfung", "DIZ check"),
        "DIZ_APPROVED" => (
            "Vom DIZ freigegeben, UAC stimmt ab",
            "Approved by the DIZ, UAC voting",
        ),
        "DIZ_CONDITION_CHECK" => (
            "DIZ mit Auflagen, UAC stimmt ab",
            "DIZ with conditions, UAC voting",
        ),
        "UAC_APPROVED" => ("Vom UAC genehmigt", "Approved by the UAC"),
        "UAC_DECLINED" => ("Vom UAC abgelehnt", "Declined by the UAC"),
        "CONDITIONAL_APPROVAL_PENDING" => (
            "Genehmigt mit Auflagen, Antwort ausstehend",
            "Approved with conditions, answer pending",
        ),
        "CONDITIONAL_APPROVAL_ACCEPTED" => ("Auflagen angenommen", "Conditions accepted"),
        "CONDITIONAL_APPROVAL_DECLINED" => ("Auflagen abgelehnt", "Conditions declined"),
        "REQUESTED_BUT_EXCLUDED" => ("Angefragt, aber ausgeschlossen", "Requested but excluded"),
        _ => ("?", "?"),
    };
    match lang {
        Lang::De => de,
        Lang::En => en,
    }
}

/// HTML-escapes text for element content and double-quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn time(t: DateTime<Utc>) -> String {
    format!(
        "<time datetime=\"{}\">{}</time>",
        t.to_rfc3339_opts(SecondsFormat::Secs, true),
        t.format("%Y-%m-%d %H:%M UTC")
    )
}

/// Who is looking at the page.
pub struct Viewer<'a> {
    pub name: &'a str,
    pub email: &'a str,
    pub member: bool,
    /// DIZ staff (config `diz`): records the DIZ check and the answer to conditions.
    pub diz: bool,
    pub csrf: &'a str,
}

pub struct Page<'a> {
    pub lang: Lang,
    pub base: &'a str,
    /// Path of this page below `base` (the language switch links back to it).
    pub here: &'a str,
    pub site: &'a str,
    pub viewer: Option<&'a Viewer<'a>>,
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:60rem;margin:0 auto;padding:1rem;line-height:1.5;color:#111}\
a{color:#0645ad}:focus{outline:3px solid #c60;outline-offset:2px}\
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:#fff;padding:.5rem}\
header{display:flex;flex-wrap:wrap;gap:1rem;justify-content:space-between;border-bottom:1px solid #999;margin-bottom:1rem}\
table{border-collapse:collapse;width:100%}th,td{border:1px solid #999;padding:.3rem;text-align:left;vertical-align:top}\
caption{text-align:left;font-weight:bold}.overdue{color:#a00;font-weight:bold}\
fieldset{margin:.5rem 0}label{display:block;margin:.3rem 0}textarea{width:100%;min-height:4rem}\
button{font-size:1rem;padding:.4rem 1rem}[role=alert]{border:2px solid #a00;padding:.5rem}";

impl Page<'_> {
    pub fn render(&self, title: &str, main: &str) -> String {
        let l = self.lang;
        let switch = [Lang::De, Lang::En]
            .into_iter()
            .map(|other| {
                let label = match other {
                    Lang::De => "Deutsch",
                    Lang::En => "English",
                };
                if other == l {
                    format!("<li><a href=\"{}{}?lang={}\" aria-current=\"true\" lang=\"{}\">{label}</a></li>", esc(self.base), esc(self.here), other.code(), other.code())
                } else {
                    format!("<li><a href=\"{}{}?lang={}\" lang=\"{}\">{label}</a></li>", esc(self.base), esc(self.here), other.code(), other.code())
                }
            })
            .collect::<String>();
        let user = match self.viewer {
            Some(v) => format!(
                "<p>{} {} &lt;{}&gt;</p><form method=\"post\" action=\"{}/auth/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\">{}</button></form>",
                t(l, "logged_in_as"),
                esc(v.name),
                esc(v.email),
                esc(self.base),
                esc(v.csrf),
                t(l, "logout")
            ),
            None => String::new(),
        };
        format!(
            "<!doctype html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title} – {inbox} {site}</title><style>{STYLE}</style></head>\
<body><a class=\"skip\" href=\"#main\">{skip}</a><header><p><a href=\"{base}/\">{inbox} {site}</a></p><nav aria-label=\"{language}\"><ul>{switch}</ul></nav>{user}</header>\
<main id=\"main\">{main}</main></body></html>\n",
            lang = l.code(),
            title = esc(title),
            inbox = t(l, "inbox"),
            site = esc(self.site),
            skip = t(l, "skip"),
            base = esc(self.base),
            language = t(l, "language"),
        )
    }
}

/// The list: one section per state (open states first), each proposal with its deadline.
pub fn list(page: &Page, records: &[Record], now: DateTime<Utc>) -> String {
    let l = page.lang;
    let mut main = format!("<h1>{}</h1>", t(l, "proposals"));
    if records.is_empty() {
        main.push_str(&format!("<p>{}</p>", t(l, "none")));
    }
    let mut states: Vec<State> = State::ALL.to_vec();
    states.sort_by_key(|s| !s.is_open());
    for state in states {
        let rows: Vec<&Record> = records.iter().filter(|r| r.state == state).collect();
        if rows.is_empty() {
            continue;
        }
        main.push_str(&format!(
            "<section><h2>{} ({})</h2><table><caption>{} – {}</caption><thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead><tbody>",
            t(l, state.as_str()),
            rows.len(),
            t(l, state.as_str()),
            t(l, "proposals"),
            t(l, "id"),
            t(l, "title"),
            t(l, "received"),
            t(l, "deadline"),
        ));
        for r in rows {
            let overdue = if workflow::is_overdue(r.state, r.deadline, now) {
                format!(" <strong class=\"overdue\">({})</strong>", t(l, "overdue"))
            } else {
                String::new()
            };
            main.push_str(&format!(
                "<tr><td><a href=\"{}/proposals/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}{overdue}</td></tr>",
                esc(page.base),
                esc(&r.proposal.id),
                esc(&r.proposal.id),
                esc(&r.proposal.title),
                time(r.received_at),
                time(r.deadline),
            ));
        }
        main.push_str("</tbody></table></section>");
    }
    page.render(t(l, "proposals"), &main)
}

pub struct Detail<'a> {
    pub record: &'a Record,
    pub votes: &'a [StoredVote],
    pub audit: &'a [AuditEntry],
    pub quorum: u32,
    pub now: DateTime<Utc>,
}

fn radios(l: Lang, name: &str, options: &[&str], legend: &str) -> String {
    let mut out = format!("<fieldset><legend>{legend}</legend>");
    for (i, o) in options.iter().enumerate() {
        out.push_str(&format!(
            "<label><input type=\"radio\" name=\"{name}\" value=\"{o}\" id=\"{name}-{o}\"{}> {}</label>",
            if i == 0 { " required" } else { "" },
            t(l, o)
        ));
    }
    out.push_str("</fieldset>");
    out
}

fn textarea(name: &str, label: &str) -> String {
    format!(
        "<label for=\"{name}\">{label}</label><textarea id=\"{name}\" name=\"{name}\"></textarea>"
    )
}

/// One proposal: details, the form its state allows, votes, decision, audit trail.
pub fn detail(page: &Page, d: &Detail) -> String {
    let l = page.lang;
    let p = &d.record.proposal;
    let r = d.record;
    let base = esc(page.base);
    let id = esc(&p.id);
    let csrf = page.viewer.map(|v| esc(v.csrf)).unwrap_or_default();
    let overdue = if workflow::is_overdue(r.state, r.deadline, d.now) {
        format!(" <strong class=\"overdue\">({})</strong>", t(l, "overdue"))
    } else {
        String::new()
    };
    let mut main = format!(
        "<h1>{title}</h1><section aria-labelledby=\"details\"><h2 id=\"details\">{details}</h2><dl>\
<dt>{lid}</dt><dd>{id}</dd><dt>{lstate}</dt><dd id=\"state\">{state} <code>{code}</code></dd>\
<dt>{ldeadline}</dt><dd>{deadline}{overdue}</dd><dt>{lapplicant}</dt><dd>{applicant}</dd>\
<dt>{linstitution}</dt><dd>{institution}</dd><dt>{lrequested}</dt><dd><ul>{requested}</ul></dd>\
<dt>{lsites}</dt><dd>{sites}</dd><dt>{lreceived}</dt><dd>{received}</dd>{amount}</dl>\
<h3>{lsummary}</h3><p>{summary}</p></section>",
        title = esc(&p.title),
        amount = r
            .data_amount
            .map(|n| format!(
                "<dt>{}</dt><dd id=\"data-amount\">{n} {}</dd>",
                t(l, "data_amount"),
                t(l, "patients")
            ))
            .unwrap_or_default(),
        details = t(l, "details"),
        lid = t(l, "id"),
        lstate = t(l, "state"),
        state = t(l, r.state.as_str()),
        code = r.state.as_str(),
        ldeadline = t(l, "deadline"),
        deadline = time(r.deadline),
        lapplicant = t(l, "applicant"),
        applicant = esc(&p.applicant.name),
        linstitution = t(l, "institution"),
        institution = esc(&p.applicant.institution),
        lrequested = t(l, "requested"),
        requested = p
            .requested_data
            .iter()
            .map(|x| format!("<li>{}</li>", esc(x)))
            .collect::<String>(),
        lsites = t(l, "sites"),
        sites = esc(&p.sites.join(", ")),
        lreceived = t(l, "received"),
        received = time(r.received_at),
        lsummary = t(l, "summary"),
        summary = esc(&p.summary),
    );
    if let Some(at) = r.decided_at {
        // The texts that came with the decision (conditions or reasons), from its audit line.
        let texts = d
            .audit
            .iter()
            .rev()
            .find(|a| {
                workflow::Action::parse(&a.action)
                    .and_then(workflow::transition_target)
                    .is_some_and(|s| s == r.state)
            })
            .and_then(|a| a.detail.split_once(": ").map(|(_, t)| t.to_string()))
            .map(|t| format!("<p id=\"decision-texts\">{}</p>", esc(&t)))
            .unwrap_or_default();
        main.push_str(&format!(
            "<section aria-labelledby=\"decision\"><h2 id=\"decision\">{}</h2><p id=\"decision-text\">{} – {} {}</p>{texts}</section>",
            t(l, "decision"),
            t(l, r.state.as_str()),
            t(l, "decided_at"),
            time(at)
        ));
    }
    let diz_staff = page.viewer.is_some_and(|v| v.diz);
    if r.state == State::DizCheck && !diz_staff {
        main.push_str(&format!(
            "<section aria-labelledby=\"diz\"><h2 id=\"diz\">{}</h2><p>{}</p></section>",
            t(l, "diz_check"),
            t(l, "not_diz")
        ));
    }
    if r.state == State::DizCheck && diz_staff {
        main.push_str(&format!(
            "<section aria-labelledby=\"diz\"><h2 id=\"diz\">{}</h2><form method=\"post\" action=\"{base}/proposals/{id}/diz-check\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">{}<label for=\"dataAmount\">{}</label><input id=\"dataAmount\" name=\"dataAmount\" type=\"number\" min=\"0\" step=\"1\" inputmode=\"numeric\">{}<button type=\"submit\">{}</button></form></section>",
            t(l, "diz_check"),
            radios(l, "action", &["dizApprove", "dizApproveWithConditions", "dizExclude"], t(l, "diz_outcome")),
            t(l, "data_amount_input"),
            textarea("text", t(l, "diz_text")),
            t(l, "submit"),
        ));
    }
    if r.state.voting_open() {
        main.push_str(&format!(
            "<section aria-labelledby=\"vote\"><h2 id=\"vote\">{}</h2><p>{}: {} / {}</p>",
            t(l, "vote"),
            t(l, "quorum"),
            d.votes.len(),
            d.quorum
        ));
        let member = page.viewer.is_some_and(|v| v.member);
        if member {
            main.push_str(&format!(
                "<form method=\"post\" action=\"{base}/proposals/{id}/votes\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">{}{}{}<p>{}</p><button type=\"submit\">{}</button></form>",
                radios(l, "choice", &["approve", "approveWithConditions", "decline"], t(l, "your_vote")),
                textarea("conditions", t(l, "conditions")),
                textarea("reason", t(l, "reason")),
                t(l, "replace_note"),
                t(l, "submit_vote"),
            ));
        } else {
            main.push_str(&format!("<p>{}</p>", t(l, "not_member")));
        }
        main.push_str("</section>");
    }
    if r.state == State::ConditionalApprovalPending && !diz_staff {
        main.push_str(&format!(
            "<section aria-labelledby=\"answer\"><h2 id=\"answer\">{}</h2><p>{}</p></section>",
            t(l, "answer"),
            t(l, "not_diz")
        ));
    }
    if r.state == State::ConditionalApprovalPending && diz_staff {
        main.push_str(&format!(
            "<section aria-labelledby=\"answer\"><h2 id=\"answer\">{}</h2><form method=\"post\" action=\"{base}/proposals/{id}/conditions\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">{}<button type=\"submit\">{}</button></form></section>",
            t(l, "answer"),
            radios(l, "action", &["conditionsAccepted", "conditionsDeclined"], t(l, "answer")),
            t(l, "submit"),
        ));
    }
    if !d.votes.is_empty() {
        main.push_str(&format!(
            "<section aria-labelledby=\"votes\"><h2 id=\"votes\">{}</h2><table><caption>{}</caption><thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead><tbody>",
            t(l, "votes"),
            t(l, "votes"),
            t(l, "member"),
            t(l, "choice"),
            t(l, "detail"),
            t(l, "at"),
        ));
        for v in d.votes {
            main.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&v.vote.member),
                t(l, v.vote.choice.as_str()),
                esc(v
                    .vote
                    .conditions
                    .as_deref()
                    .or(v.vote.reason.as_deref())
                    .unwrap_or("")),
                time(v.at)
            ));
        }
        main.push_str("</tbody></table></section>");
    }
    main.push_str(&format!(
        "<section aria-labelledby=\"audit\"><h2 id=\"audit\">{}</h2><table id=\"audit-trail\"><caption>{}</caption><thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead><tbody>",
        t(l, "audit"),
        t(l, "audit"),
        t(l, "at"),
        t(l, "actor"),
        t(l, "action"),
        t(l, "detail"),
    ));
    for a in d.audit {
        main.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            time(a.at),
            esc(&a.actor),
            esc(&a.action),
            esc(&a.detail)
        ));
    }
    main.push_str(&format!(
        "</tbody></table></section><p><a href=\"{base}/\">{}</a></p>",
        t(l, "all")
    ));
    page.render(&p.title, &main)
}

/// An error page (refused form): the reason in an alert and a way back.
pub fn error(page: &Page, message: &str, back: Option<&str>) -> String {
    let l = page.lang;
    let back = back
        .map(|b| {
            format!(
                "<p><a href=\"{}{}\">{}</a></p>",
                esc(page.base),
                esc(b),
                t(l, "back")
            )
        })
        .unwrap_or_default();
    page.render(
        t(l, "error"),
        &format!(
            "<h1>{}</h1><p role=\"alert\">{}</p>{back}",
            t(l, "error"),
            esc(message)
        ),
    )
}

/// The page before login.
pub fn login(page: &Page, configured: bool) -> String {
    let l = page.lang;
    let body = if configured {
        format!(
            "<h1>{}</h1><p>{}</p><p><a href=\"{}/auth/login\">{}</a></p>",
            t(l, "inbox"),
            t(l, "login_needed"),
            esc(page.base),
            t(l, "login")
        )
    } else {
        format!("<h1>{}</h1><p>{}</p>", t(l, "inbox"), t(l, "no_login"))
    };
    page.render(t(l, "login"), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_negotiation() {
        for (header, want) in [
            ("en-US,en;q=0.9,de;q=0.8", Lang::En),
            ("de-DE,de;q=0.9,en;q=0.8", Lang::De),
            ("fr, en;q=0.5", Lang::En),
            ("en;q=0.4, de;q=0.6", Lang::De),
            ("", Lang::De),
            ("fr", Lang::De),
        ] {
            assert_eq!(Lang::negotiate(header), want, "{header}");
        }
    }

    #[test]
    fn every_state_and_choice_has_both_translations() {
        for s in State::ALL {
            assert_ne!(t(Lang::De, s.as_str()), "?", "{s:?}");
            assert_ne!(t(Lang::En, s.as_str()), "?", "{s:?}");
        }
        for a in workflow::Action::ALL {
            if matches!(
                a,
                workflow::Action::UacApprove
                    | workflow::Action::UacApproveWithConditions
                    | workflow::Action::UacDecline
            ) {
                continue;
            }
            assert_ne!(t(Lang::En, a.as_str()), "?", "{a:?}");
        }
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
