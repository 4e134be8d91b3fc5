"""The sandbox's demo wiki: a small, realistic Confluence with everything a sync must take or leave alone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from confluence_sandbox.confluence.attachments import Attachment, sample_pdf, sample_png
from confluence_sandbox.confluence.wiki import Page, Wiki

SINGLE = "ai-ingest"
ALL = "ai-ingest-all"

# Fixed times keep the seed deterministic; the demo's edits happen "now", so they are always newer.
_T0 = datetime(2024, 3, 4, 9, 15, tzinfo=UTC)


def _at(day: int) -> datetime:
    return _T0 + timedelta(days=day, minutes=7 * day)


INFO_MACRO = (
    '<ac:structured-macro ac:name="info" ac:schema-version="1" ac:macro-id="3f1c2a9e">'
    '<ac:parameter ac:name="title">Good to know</ac:parameter>'
    "<ac:rich-text-body><p>{text}</p></ac:rich-text-body></ac:structured-macro>"
)


def _code(language: str, source: str) -> str:
    return (
        '<ac:structured-macro ac:name="code" ac:schema-version="1">'
        f'<ac:parameter ac:name="language">{language}</ac:parameter>'
        f"<ac:plain-text-body><![CDATA[{source}]]></ac:plain-text-body></ac:structured-macro>"
    )


def _link(title: str, text: str) -> str:
    return (
        f'<ac:link><ri:page ri:content-title="{title}" />'
        f"<ac:plain-text-link-body><![CDATA[{text}]]></ac:plain-text-link-body></ac:link>"
    )


def _tasks(*items: tuple[str, bool]) -> str:
    body = "".join(
        f"<ac:task><ac:task-id>{n}</ac:task-id><ac:task-status>{'complete' if done else 'incomplete'}"
        f"</ac:task-status><ac:task-body>{text}</ac:task-body></ac:task>"
        for n, (text, done) in enumerate(items, start=1)
    )
    return f"<ac:task-list>{body}</ac:task-list>"


def seed_demo_wiki(wiki: Wiki) -> None:
    """Three global spaces with labelled trees and single pages, plus what must never sync.

    Synced: the `ai-ingest-all` roots with all their descendants, pages labelled `ai-ingest`, a labelled
    blog post. Never synced: unlabelled pages, the personal space `~jdoe`, a trashed and a restricted page.
    Attachments: a PNG shown in the architecture page's body and, from there, in a child page's body; PDFs,
    a CSV and a text file on synced pages; a zip (a type the sync skips) and a PDF on an unsynced page.
    """
    wiki.add_space("ENG", "Engineering")
    wiki.add_space("HR", "Human Resources")
    wiki.add_space("OPS", "Operations")
    wiki.add_space("~jdoe", "Jane Doe", type="personal")
    _seed_engineering(wiki)
    _seed_hr(wiki)
    _seed_operations(wiki)
    _seed_personal(wiki)


def _seed_engineering(wiki: Wiki) -> None:
    handbook = wiki.add_page(
        "ENG",
        "Engineering Handbook",
        labels=[ALL, "handbook"],
        when=_at(0),
        body=(
            "<h1>Engineering Handbook</h1><p>How we build, ship &amp; run software &mdash; start with "
            f"{_link('Onboarding für neue Entwickler', 'onboarding')}.</p>"
            + INFO_MACRO.format(text="Everything below this page is synced to Unique AI.")
        ),
    )
    onboarding = wiki.add_page(
        "ENG",
        "Onboarding für neue Entwickler",
        parent_id=handbook.id,
        when=_at(1),
        body=(
            "<h2>Willkommen an Bord! 👋</h2><p>In der ersten Woche klärst du Zugänge, richtest deine "
            "Umgebung ein und triffst dein Team. Größere Fragen? Frag im Kanal #eng-hilfe.</p>"
            + _tasks(("Laptop abholen", True), ("VPN-Zugang beantragen", False), ("Erstes PR öffnen", False))
        ),
    )
    wiki.add_page(
        "ENG",
        "Lokale Entwicklungsumgebung einrichten",
        parent_id=onboarding.id,
        when=_at(2),
        body=(
            "<p>Voraussetzungen: Python ≥ 3.11, Docker, <code>make</code>.</p>"
            + _code(
                "bash",
                'git clone git@git.example.com:eng/platform.git && cd platform\nmake setup && echo "ok" > /tmp/<ready>',
            )
            + "<p>Danach läuft alles mit <code>make dev</code> &lt;localhost:8080&gt;.</p>"
        ),
    )
    wiki.add_page(
        "ENG",
        "Zugänge und Berechtigungen",
        parent_id=onboarding.id,
        when=_at(3),
        body="<p>Zugänge beantragst du über das Self-Service-Portal. Genehmigung durch die Teamleitung &ndash; "
        "meist innerhalb von 24&nbsp;Stunden.</p>",
    )
    architecture = wiki.add_page(
        "ENG",
        "Architecture Overview",
        parent_id=handbook.id,
        when=_at(4),
        body=(
            '<p>The big picture:</p><ac:image ac:width="640" ac:alt="System context diagram">'
            '<ri:attachment ri:filename="system-context.png" /></ac:image>'
            f"<p>Details per service in {_link('Service Boundaries', 'Service Boundaries')}.</p>"
        ),
    )
    _attach(wiki, architecture, "system-context.png", sample_png(4, 3, (0, 82, 204)), _at(4))
    boundaries = wiki.add_page(
        "ENG",
        "Service Boundaries",
        parent_id=architecture.id,
        when=_at(5),
        body=(
            "<table><tbody><tr><th>Service</th><th>Owns</th></tr>"
            "<tr><td>billing</td><td>invoices, dunning</td></tr>"
            "<tr><td>identity</td><td>users, SSO</td></tr></tbody></table>"
            # An image attached to another page: storage format names that page by title.
            '<p>Where they sit:</p><ac:image ac:height="120"><ri:attachment ri:filename="system-context.png">'
            '<ri:page ri:content-title="Architecture Overview" /></ri:attachment></ac:image>'
        ),
    )
    _attach(
        wiki,
        boundaries,
        "service-owners.csv",
        b"service,owner\nbilling,Team Ledger\nidentity,Team Gate\n",
        _at(5),
    )
    # Labelled on its own as well: reached twice (label and tree), synced once.
    wiki.add_page(
        "ENG",
        "Coding Guidelines",
        parent_id=handbook.id,
        labels=[SINGLE, "howto"],
        when=_at(6),
        body=(
            "<ol><li>Small PRs.</li><li>Tests first.</li><li>No <code>print()</code> debugging in main.</li></ol>"
            + _code("python", 'def greet(name: str) -> str:\n    return f"Hello, {name} & welcome"')
        ),
    )
    release = wiki.add_page(
        "ENG",
        "How to cut a release",
        labels=[SINGLE, "howto", "release"],
        when=_at(7),
        body=(
            "<p>Releases leave <code>main</code> every second Tuesday.</p>"
            + _tasks(("Freeze main", False), ("Tag vX.Y.Z", False), ("Announce in #releases", False))
            + '<p>Checklist: <ac:link><ri:attachment ri:filename="release-checklist.pdf" /></ac:link></p>'
        ),
    )
    _attach(wiki, release, "release-checklist.pdf", sample_pdf("Release checklist v1"), _at(7))
    wiki.add_page(
        "ENG",
        "🚀 Release notes 2.4",
        type="blogpost",
        labels=[SINGLE, "release"],
        when=_at(8),
        body='<p>2.4 is out <ac:emoticon ac:name="smile" />: faster search, dark mode, and 42 fixes.</p>',
    )
    lunch = wiki.add_page("ENG", "Team lunch planning", when=_at(9), body="<p>Pizza or ramen? Vote by Friday.</p>")
    _attach(wiki, lunch, "menu.pdf", sample_pdf("Pizza menu"), _at(9))  # its page is not synced, so neither is it
    # Labelled but in the trash: Confluence search no longer returns it.
    old = wiki.add_page(
        "ENG", "Old deployment guide", labels=[SINGLE], when=_at(1), body="<p>Superseded by the release guide.</p>"
    )
    wiki.trash_page(old.id)


def _seed_hr(wiki: Wiki) -> None:
    faq = wiki.add_page(
        "HR",
        "HR FAQ",
        labels=[SINGLE, "faq"],
        when=_at(10),
        body=(
            "<h2>How many vacation days do I have?</h2><p>30 days per year, pro rata in your first year.</p>"
            "<h2>Where do I report sick leave?</h2><p>In the HR portal before 10:00 &ndash; thanks!</p>"
        ),
    )
    _attach(wiki, faq, "Urlaubsantrag (Vorlage).pdf", sample_pdf("Urlaubsantrag"), _at(10))
    _attach(wiki, faq, "forms-archive.zip", b"PK\x05\x06" + bytes(18), _at(10))  # not an allowed type: skipped
    wiki.add_page(
        "HR",
        "Urlaubsregelung & Feiertage",
        labels=[SINGLE, "policy"],
        when=_at(11),
        body=(
            "<p>Gesetzliche Feiertage richten sich nach dem Bundesland des Büros (z.&nbsp;B. Fronleichnam in "
            "Bayern, Reformationstag in Sachsen). Überstunden werden 1:1 ausgeglichen.</p>"
            + INFO_MACRO.format(text="Brückentage: bitte früh mit dem Team abstimmen.")
        ),
    )
    # View-restricted to HR: the service user cannot see it, so it never reaches Unique.
    salaries = wiki.add_page("HR", "Salary bands 2025", labels=[SINGLE], when=_at(12), body="<p>Confidential.</p>")
    wiki.hide_page(salaries.id)
    wiki.add_page("HR", "Interview feedback drafts", when=_at(13), body="<p>Drafts, not for sharing.</p>")


def _seed_operations(wiki: Wiki) -> None:
    runbooks = wiki.add_page(
        "OPS",
        "Runbooks",
        labels=[ALL],
        when=_at(14),
        body='<h1>Runbooks</h1><p>Start here when something is on fire <ac:emoticon ac:name="warning" />.</p>',
    )
    incident = wiki.add_page(
        "OPS",
        "Incident response",
        parent_id=runbooks.id,
        when=_at(15),
        body=(
            INFO_MACRO.format(text="Declare the incident first, debug second.")
            + _tasks(("Open #inc channel", False), ("Page the on-call lead", False), ("Write the timeline", False))
        ),
    )
    wiki.add_page(
        "OPS",
        "Escalation matrix",
        parent_id=incident.id,
        when=_at(16),
        body=(
            "<table><tbody><tr><th>Severity</th><th>Who</th><th>Within</th></tr>"
            "<tr><td>SEV1</td><td>On-call lead + CTO</td><td>15&nbsp;min</td></tr>"
            "<tr><td>SEV2</td><td>On-call lead</td><td>1&nbsp;h</td></tr></tbody></table>"
        ),
    )
    wiki.add_page(
        "OPS",
        "デプロイ手順 (Deployment procedure)",
        parent_id=runbooks.id,
        when=_at(17),
        body=(
            "<p>本番環境へのデプロイは、必ずステージングで確認してから行ってください。✅</p>"
            + _code("bash", "kubectl rollout status deploy/api -n prod && echo '完了'")
        ),
    )
    wiki.add_page(
        "OPS",
        "On-call FAQ",
        labels=[SINGLE, "faq"],
        when=_at(18),
        body="<h2>Who is on call?</h2><p>See the rota in PagerDuty; hand-over is Monday 09:00 CET.</p>",
    )
    rotation = wiki.add_page(
        "OPS",
        "How to rotate credentials",
        labels=[SINGLE, "howto", "security"],
        when=_at(19),
        body=(
            "<p>Rotate every 90 days.</p>"
            + _code("bash", "vault write -f auth/approle/role/ci/secret-id  # prints a new <secret_id>")
        ),
    )
    _attach(wiki, rotation, "rotation-schedule.txt", b"Q1: CI\nQ2: databases\nQ3: SSO\nQ4: backups\n", _at(19))
    wiki.add_page("OPS", "Scratchpad", when=_at(20), body="<p>tmp notes &amp; half-baked ideas</p>")


def _seed_personal(wiki: Wiki) -> None:
    wiki.add_page(
        "~jdoe",
        "My notes on the migration",
        labels=[SINGLE],
        when=_at(21),
        body="<p>Personal spaces are never synced, labels or not.</p>",
    )
    reading = wiki.add_page("~jdoe", "Reading list", labels=[ALL], when=_at(22), body="<ul><li>SRE book</li></ul>")
    wiki.add_page("~jdoe", "Papers", parent_id=reading.id, when=_at(23), body="<p>Dynamo, Spanner, Raft.</p>")


def _attach(wiki: Wiki, page: Page, filename: str, data: bytes, when: datetime) -> Attachment:
    return wiki.add_attachment(page.id, filename, data, when=when)


@dataclass(frozen=True)
class DemoEdits:
    """What `apply_demo_edits` changed: the next sync must update `updated` with a new version of its attachment
    `new_version`, and delete `unlabelled` with its attachments."""

    updated: Page
    unlabelled: Page
    removed_label: str
    new_version: Attachment


def find_page(wiki: Wiki, space_key: str, title: str) -> Page:
    for page_id in wiki.ids_with_title(title):
        page = wiki.pages[page_id]
        if page.space_key == space_key and page.status == "current":
            return page
    raise KeyError(f"no page {title!r} in space {space_key}")


def apply_demo_edits(wiki: Wiki) -> DemoEdits:
    """An author edits the release guide (new version) and someone takes the sync label off a how-to."""
    updated = find_page(wiki, "ENG", "How to cut a release")
    wiki.update_page(
        updated.id,
        body=updated.body + "<p><strong>New:</strong> releases now also need a changelog entry ✍️.</p>",
    )
    checklist = wiki.find_attachment(updated.id, "release-checklist.pdf")
    assert checklist is not None
    wiki.update_attachment(checklist.id, sample_pdf("Release checklist v2: changelog entry required"))
    unlabelled = find_page(wiki, "OPS", "How to rotate credentials")
    wiki.remove_label(unlabelled.id, SINGLE)
    return DemoEdits(updated=updated, unlabelled=unlabelled, removed_label=SINGLE, new_version=checklist)
