// Drives the berth console in Debian's headless Chromium, as a person would:
//  1. sign in (a wrong token first), user content shows as text;
//  2. add a basic-auth registry and test its connection;
//  3. create a service with the live image preview (a refused name first), deploy it from the
//     Build Area, watch it become ready (streamed over SSE), promote it, open its URL;
//  4. endpoints: an invalid endpoints.yaml shows every issue inline; upload a schema, save a
//     valid file;
//  5. runtime logs, followed live; configs and a write-only secret;
//  6. a manual task: create, deploy, Run with Arguments, read its logs and exit code;
//  7. DevOps → External CI: create a token (shown once, copy button), read the snippets;
//  8. users and API tokens, the audit log;
//  9. a cross-site POST and a same-origin POST without the CSRF token are refused;
// 10. narrow screens (375 px) never scroll sideways; sign out.
//
// Usage: node console.mjs <console-url> <api-token>
// Environment (set by crates/berth/tests/console.rs):
//   BERTH_CONSOLE_PROJECT      project to create the components in (exists already)
//   BERTH_CONSOLE_COMPONENT    unique name of the service to create
//   BERTH_CONSOLE_TASK         unique name of the manual task to create
//   BERTH_TEST_REGISTRY        host:port of the basic-auth test registry
//   BERTH_TEST_USER / BERTH_TEST_PASSWORD   its credentials
//   BERTH_CONSOLE_XSS          markup that must show as text (project description)
//   BERTH_CONSOLE_SCREENSHOTS  directory for screenshots of the main pages (optional)
//   BERTH_CHROMIUM             Chromium binary (default /usr/bin/chromium)
// Prints `RESULT {json}` on success; exits non-zero with the reason otherwise.

import { chromium } from "playwright-core";
import { mkdtempSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [base, token] = process.argv.slice(2);
if (!base || !token) {
  console.error("usage: node console.mjs <console-url> <api-token>");
  process.exit(2);
}
const need = (name) => {
  const v = process.env[name];
  if (!v) {
    console.error(`missing environment variable ${name}`);
    process.exit(2);
  }
  return v;
};
const project = need("BERTH_CONSOLE_PROJECT");
const component = need("BERTH_CONSOLE_COMPONENT");
const task = need("BERTH_CONSOLE_TASK");
const registryHost = need("BERTH_TEST_REGISTRY");
const registryUser = need("BERTH_TEST_USER");
const registryPassword = need("BERTH_TEST_PASSWORD");
const xss = process.env.BERTH_CONSOLE_XSS;
const shots = process.env.BERTH_CONSOLE_SCREENSHOTS;
if (shots) mkdirSync(shots, { recursive: true });

// Markup in a display name and a description (of a third component): must show as text,
// never run.
const xssName = `Web "><script>alert("name")</script> front`;
const xssDescription = `<script>alert('desc')</script>' onmouseover='alert(1)`;
const componentUrl = `${base}/orgs/default/projects/${project}/components/${component}`;
const taskUrl = `${base}/orgs/default/projects/${project}/components/${task}`;

const step = (what) => console.error(`[browser] ${what}`);
const fail = (why) => {
  throw new Error(why);
};
async function shot(page, name) {
  if (!shots) return;
  // Full pages, capped so a long page stays a reasonably small PNG.
  const height = await page.evaluate(() => document.documentElement.scrollHeight);
  const viewport = page.viewportSize();
  await page.screenshot({
    path: join(shots, `${name}.png`),
    fullPage: true,
    clip: { x: 0, y: 0, width: viewport.width, height: Math.min(height, 1400) },
  });
}
// One part of a page (a card), for a screenshot that shows what matters.
async function shotOf(locator, name) {
  if (shots) await locator.screenshot({ path: join(shots, `${name}.png`) });
}
// The page must fit a 375 px wide phone screen without scrolling sideways.
async function fitsNarrow(page, what) {
  const size = page.viewportSize();
  await page.setViewportSize({ width: 375, height: 800 });
  const [overflow, culprits] = await page.evaluate(() => {
    const width = window.innerWidth;
    // The outermost elements that stick out, to name in the failure.
    // Inside a scrolling box only what is taken out of the flow can widen the page.
    const wide = [...document.querySelectorAll("body *")].filter(
      (e) =>
        e.getBoundingClientRect().right > width + 1 &&
        (!e.parentElement.closest(".table-wrap, pre") || ["absolute", "fixed"].includes(getComputedStyle(e).position)),
    );
    const outer = wide.filter((e) => !wide.includes(e.parentElement));
    return [
      document.documentElement.scrollWidth - width,
      outer.slice(0, 5).map((e) => `${e.tagName.toLowerCase()}${e.id ? "#" + e.id : ""}.${e.className} (${Math.round(e.getBoundingClientRect().right)}px)`),
    ];
  });
  await page.setViewportSize(size);
  if (overflow > 1) fail(`${what} is ${overflow}px wider than a 375px screen: ${culprits.join(", ")}`);
}

// Opens a <details> (by its summary, as a person would) unless it is open already.
async function openDetails(details) {
  if (!(await details.evaluate((e) => e.open))) await details.locator("summary").click();
}

const userDataDir = mkdtempSync(join(tmpdir(), "berth-chromium-"));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.BERTH_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
  viewport: { width: 1200, height: 900 },
});
await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });

// Anything the page complains about is a finding: CSP violations, script errors, dialogs
// (an injected alert()), failed requests.
const problems = [];
let exitCode = 0;
// EventSource connections opened by the pages (path → count).
const streams = new Map();
try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(20_000);
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    // Failed loads are reported with their URL by the response handler below.
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource"))
      problems.push(`console error: ${m.text()}`);
  });
  page.on("response", (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()} ${r.request().method()} ${r.url()}`);
  });
  page.on("request", (r) => {
    const path = new URL(r.url()).pathname;
    if (path.endsWith("/live/events") || path.endsWith("/logs/stream"))
      streams.set(path, (streams.get(path) ?? 0) + 1);
  });
  page.on("dialog", async (d) => {
    problems.push(`unexpected dialog (${d.type()}): ${d.message()}`);
    await d.dismiss();
  });

  // 1. Sign in: the console sends us to the sign-in page first.
  step("sign in");
  await page.goto(`${base}/orgs/default`);
  if (!page.url().includes("/login")) fail(`expected the sign-in page, got ${page.url()}`);
  // Keyboard: the first Tab lands on the skip link.
  await page.keyboard.press("Tab");
  const focused = await page.evaluate(() => document.activeElement?.textContent?.trim());
  if (focused !== "Skip to content") fail(`first Tab focused ${JSON.stringify(focused)}`);
  await page.getByLabel("API token").fill("berth_pat_notavalidtoken0000");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText("That token is unknown, revoked or expired.").waitFor();
  await shot(page, "01-sign-in");
  // Sign in with the keyboard only.
  await page.getByLabel("API token").fill(token);
  await page.getByLabel("API token").press("Enter");
  await page.waitForURL(/\/orgs\/default$/);
  await page.getByRole("heading", { level: 1, name: /Default/ }).waitFor();

  if (xss) {
    step("escaping on the overview");
    const shown = await page.locator(".project-description", { hasText: xss }).count();
    if (shown !== 1) fail(`the description ${JSON.stringify(xss)} is not shown as text`);
    if ((await page.locator("img[src='x']").count()) !== 0) fail("an injected <img> was rendered");
  }

  // 2. Settings → Container Registries: add a basic-auth registry, then test it.
  step("add a registry");
  await page.getByRole("link", { name: "Container registries" }).click();
  await page.getByLabel("Name", { exact: true }).fill("local");
  await page.getByLabel("Display name (optional)").fill("Local registry");
  await page.getByLabel("Host", { exact: true }).fill(registryHost);
  // Credentials appear only for the auth types that use them.
  if (await page.getByLabel("Username", { exact: true }).isVisible()) fail("username shown before choosing Basic");
  await page.getByRole("radio", { name: /Basic/ }).check();
  await page.getByLabel("Username", { exact: true }).fill(registryUser);
  await page.getByLabel("Password or access token").fill(registryPassword);
  await page.getByRole("button", { name: "Add registry" }).click();
  await page.getByText("Registry added.").waitFor();
  if ((await page.content()).includes(registryPassword)) fail("the registry password came back");

  step("test the registry connection");
  await page.locator("#test-image-local").fill("test/web:v1");
  await page
    .locator("#registry-local")
    .getByRole("button", { name: /Test connection/ })
    .click();
  await page.locator("#test-local").getByText("Connection to local works.").waitFor();
  const steps = await page.locator("#test-local .steps li").allInnerTexts();
  if (!steps.some((s) => s.startsWith("auth")) || !steps.some((s) => s.startsWith("manifest")))
    fail(`test steps missing: ${JSON.stringify(steps)}`);
  if (await page.locator("#test-local .steps li.fail").count()) fail(`a test step failed: ${steps}`);
  await page.locator("#test-local").getByText(/Resolved to sha256:/).waitFor();
  await shot(page, "02-registries");
  await fitsNarrow(page, "the registries page");

  // 3. Create a component; the preview parses the image URL as you type.
  step("create a component");
  await page.getByRole("link", { name: "Overview" }).click();
  await page.locator(`#project-${project}`).getByRole("link", { name: /Create component/ }).click();
  await page.getByRole("radio", { name: "Service", exact: true }).check();
  const image = page.getByLabel("Image URL", { exact: true });
  await image.fill("nginx");
  await page.locator("#image-normalized").getByText("docker.io/library/nginx:latest").waitFor();
  await page.locator("#image-preview").getByText("added: official images live there").waitFor();
  await image.fill(`${registryHost}/test/web:v1`);
  await page.locator("#image-normalized").getByText(`${registryHost}/test/web:v1`).waitFor();
  await page.locator("#image-preview").getByText(/Pulled through registry Local registry/).waitFor();
  await page.getByLabel("Display name", { exact: true }).fill("Web front");
  await page.getByLabel("Unique name", { exact: true }).fill("Bad Name");
  await page.getByLabel("Container port (optional)").fill("8080");
  await page.getByRole("button", { name: "Create component" }).click();
  // Errors come back next to the field, with what was typed kept.
  await page.locator("#name-error").getByText("must start with a lowercase letter").waitFor();
  if ((await page.getByLabel("Image URL", { exact: true }).inputValue()) !== `${registryHost}/test/web:v1`)
    fail("the image URL was not kept after an error");
  await page.getByLabel("Unique name", { exact: true }).fill(component);
  await page.getByLabel("Description", { exact: true }).fill("The shop's storefront, from the test registry.");
  await shot(page, "03-create-component");
  await page.getByRole("button", { name: "Create component" }).click();
  await page.waitForURL(new RegExp(`/components/${component}\\?done=created$`));
  await page.getByRole("heading", { level: 1, name: /Web front/ }).waitFor();

  // Deploy from the Build Area: Update Image Tag lists the registry's tags.
  step("deploy v1 from the component page");
  const tag = page.locator("select#deploy-tag");
  await tag.waitFor();
  const tags = await tag.locator("option").allInnerTexts();
  if (!tags.some((t) => t.startsWith("v1")) || !tags.some((t) => t.startsWith("v2")))
    fail(`tags not listed: ${JSON.stringify(tags)}`);
  await tag.selectOption("v1");
  await page.getByRole("button", { name: "Deploy tag" }).click();
  await page.getByText("Deployment started").waitFor();
  const dev = page.locator('[data-env="development"]');
  // The page does not reload: the status arrives over Server-Sent Events.
  await dev.locator('[data-testid="status"]').getByText("ready", { exact: true }).waitFor({ timeout: 150_000 });
  const events = await page.locator(".events li").allInnerTexts();
  if (events.length === 0) fail("no deployment events shown");
  const url = await dev.locator("a.env-url").getAttribute("href");
  if (!url) fail("no URL shown for development");
  // Once the deployment is final the stream ends and the page does not reconnect.
  const livePath = new URL(`${componentUrl}/live/events`).pathname;
  const opened = streams.get(livePath) ?? 0;
  if (opened < 1) fail("the page did not open the deployment's event stream");
  await page.waitForTimeout(2500);
  if ((streams.get(livePath) ?? 0) !== opened) fail("the event stream reconnected after the deployment finished");

  // Update Image URL: a host no registry serves is refused, next to the form.
  step("update image URL: refused inline");
  await page.getByText("Update Image URL", { exact: true }).click();
  await page.getByLabel("Image URL", { exact: true }).fill("ghcr.io/acme/web:1");
  await page.getByRole("button", { name: "Deploy image" }).click();
  await page.locator("#deploy-error").getByText("no registered registry serves ghcr.io").waitFor();
  if ((await page.getByLabel("Image URL", { exact: true }).inputValue()) !== "ghcr.io/acme/web:1")
    fail("the refused image URL was not kept in its field");

  // Promote what is ready in development to production.
  step("promote to production");
  await page
    .locator('[data-env="development"]')
    .getByRole("button", { name: "Promote to Production" })
    .click();
  await page.getByText("Promotion started").waitFor();
  const prod = page.locator('[data-env="production"]');
  await prod.locator('[data-testid="status"]').getByText("ready", { exact: true }).waitFor({ timeout: 150_000 });
  const prodUrl = await prod.locator("a.env-url").getAttribute("href");
  if (!prodUrl) fail("no URL shown for production");
  await shot(page, "04-component");
  await fitsNarrow(page, "the component page");
  if (shots) {
    await page.setViewportSize({ width: 375, height: 800 });
    await page.screenshot({ path: join(shots, "05-component-narrow.png") });
    await page.setViewportSize({ width: 1200, height: 900 });
  }

  // 4. Endpoints: an invalid file shows every issue at the editor; then a schema and a valid one.
  step("endpoints: invalid file refused inline");
  await page.goto(componentUrl);
  await openDetails(page.locator("#endpoints details").first());
  await page.getByLabel("File content (YAML)").fill(
    "version: 0.1\nendpoints:\n  - name: web\n    port: 80\n    type: rest\n  - port: 70000\n    type: REST\n",
  );
  await page.getByRole("button", { name: "Save endpoints" }).click();
  const endpointsError = page.locator("#endpoints-error");
  await endpointsError.getByText(/Not saved: the file has \d+ problems/).waitFor();
  const issues = await endpointsError.locator(".issues li").allInnerTexts();
  if (!issues.some((i) => i.startsWith("endpoints[0].port")) || !issues.some((i) => i.startsWith("endpoints[1].port")))
    fail(`the issues are not listed at the editor: ${JSON.stringify(issues)}`);
  if ((await page.getByLabel("File content (YAML)").getAttribute("aria-invalid")) !== "true")
    fail("the editor is not marked invalid");
  if (!(await page.getByLabel("File content (YAML)").inputValue()).includes("port: 70000"))
    fail("what was typed is not kept in the editor");
  await shotOf(page.locator("#endpoints"), "06-endpoints-error");

  step("endpoints: upload a schema, save a valid file");
  await openDetails(page.locator("#endpoints details").nth(1));
  await page.getByLabel("Schema file").setInputFiles({
    name: "openapi.yaml",
    mimeType: "application/yaml",
    buffer: Buffer.from("openapi: 3.0.3\ninfo: {title: web, version: '1'}\npaths: {}\n"),
  });
  await page.getByRole("button", { name: "Upload schema" }).click();
  await page.getByText("Schema file saved.").waitFor();
  await openDetails(page.locator("#endpoints details").first());
  await page.getByLabel("File content (YAML)").fill(
    "version: 0.1\nendpoints:\n  - name: web\n    port: 8080\n    type: REST\n    networkVisibility: Public\n    context: /\n    schemaFilePath: openapi.yaml\n",
  );
  await page.getByRole("button", { name: "Save endpoints" }).click();
  await page.getByText("Endpoints saved.").waitFor();
  await page.locator("#endpoints table").getByText("openapi.yaml").waitFor();

  // 5. Runtime logs, followed: a request to the component shows up as a new line.
  step("runtime logs, followed");
  await page.getByRole("link", { name: "Runtime logs" }).click();
  await page.locator("#log").getByText(/web v1 listening/).waitFor();
  await page.getByRole("link", { name: "Follow", exact: true }).click();
  const log = page.locator("#log .log-line");
  await log.filter({ hasText: /web v1 listening/ }).first().waitFor();
  const before = await log.count();
  const hit = await fetch(url);
  if (hit.status !== 200) fail(`${url} answered ${hit.status}`);
  await page.waitForFunction((n) => document.querySelectorAll("#log .log-line").length > n, before, { timeout: 20_000 });
  await shot(page, "07-logs");
  await page.getByRole("link", { name: "Stop following" }).click();
  await page.locator("#follow").waitFor();

  // Configs and secrets: the secret's value never comes back.
  step("configs and a write-only secret");
  await page.getByRole("link", { name: "Configs & secrets" }).click();
  const setConfig = async (kind, name, value) => {
    await page.getByRole("radio", { name: kind, exact: true }).check();
    await page.getByLabel("Name or mount path").fill(name);
    await page.getByLabel("Value", { exact: true }).fill(value);
    // Not rolled out now: it applies with the next deployment.
    await page.getByLabel(/Roll out the running release again now/).uncheck();
    await page.getByRole("button", { name: "Save", exact: true }).click();
    await page.getByText("Saved.").waitFor();
  };
  await setConfig("Environment variable", "LEVEL", "debug");
  await setConfig("Secret environment variable", "DB_PASSWORD", "browser-secret-value-42");
  await page.locator('[data-config="DB_PASSWORD"]').getByText("write-only").waitFor();
  if ((await page.content()).includes("browser-secret-value-42")) fail("a secret value came back");
  await shot(page, "08-configs");
  await fitsNarrow(page, "the configs page");

  // 6. A manual task: create, deploy, Run with Arguments, read its logs and exit code.
  step("manual task: create and deploy");
  await page.goto(`${base}/orgs/default/projects/${project}/new-component`);
  await page.getByRole("radio", { name: "Manual Task", exact: true }).check();
  await page.getByLabel("Image URL", { exact: true }).fill(`${registryHost}/test/task:latest`);
  await page.getByLabel("Display name", { exact: true }).fill("Nightly report");
  await page.getByLabel("Unique name", { exact: true }).fill(task);
  await page.getByRole("button", { name: "Create component" }).click();
  await page.waitForURL(new RegExp(`/components/${task}\\?done=created$`));
  await page.locator("select#deploy-tag").waitFor();
  await page.getByRole("button", { name: "Deploy tag" }).click();
  await page
    .locator('[data-env="development"] [data-testid="status"]')
    .getByText("ready", { exact: true })
    .waitFor({ timeout: 150_000 });

  step("manual task: Run with Arguments, logs and exit code");
  await page.getByRole("link", { name: "Runs", exact: true }).first().click();
  await openDetails(page.locator("details", { hasText: "Run with Arguments" }));
  await page.getByLabel("Arguments").fill(`hello 'two words' "<b>x</b>"`);
  await page.getByLabel(/Environment variables for this run/).fill("EXIT_CODE=3");
  await page.getByRole("button", { name: "Run with Arguments" }).click();
  await page.waitForURL(new RegExp(`/components/${task}/executions/`));
  const executionUrl = page.url();
  // The page refreshes while it runs; then: failed with the task's exit code, and its output.
  await page.locator('[data-testid="execution-status"]').getByText("failed", { exact: true }).waitFor({ timeout: 120_000 });
  const exitShown = (await page.locator('[data-testid="exit-code"]').innerText()).trim();
  if (exitShown !== "3") fail(`exit code shown: ${JSON.stringify(exitShown)}`);
  const taskLogs = await page.locator("#execution-logs").innerText();
  for (const want of ["task: argc=3", "task: arg[1]=hello", "task: arg[2]=two words", "task: arg[3]=<b>x</b>", "task: exiting with 3"])
    if (!taskLogs.includes(want)) fail(`the task's logs lack ${JSON.stringify(want)}:\n${taskLogs}`);
  if ((await page.locator("#execution-logs b").count()) !== 0) fail("task output was rendered as markup");
  await shot(page, "09-task-execution");

  step("manual task: Run Now, then the history");
  await page.goto(`${taskUrl}/tasks`);
  await page.getByRole("button", { name: "Run Now" }).click();
  await page.waitForURL(new RegExp(`/components/${task}/executions/`));
  await page.locator('[data-testid="execution-status"]').getByText("succeeded", { exact: true }).waitFor({ timeout: 120_000 });
  if ((await page.locator('[data-testid="exit-code"]').innerText()).trim() !== "0") fail("Run Now did not exit 0");
  await page.goto(`${taskUrl}/tasks`);
  const rows = page.locator("#executions tbody tr");
  if ((await rows.count()) !== 2) fail(`expected 2 executions, saw ${await rows.count()}`);
  const statuses = await page.locator("#executions tbody tr .badge").allInnerTexts();
  if (statuses.join(",") !== "succeeded,failed") fail(`execution statuses: ${statuses}`);
  await shot(page, "10-task-runs");
  await fitsNarrow(page, "the task runs page");

  // 7. DevOps → External CI: a token shown once with a copy button, and the snippets.
  step("External CI: token and snippets");
  await page.goto(componentUrl);
  await page.getByRole("link", { name: "DevOps: External CI" }).click();
  await page.getByLabel("Name", { exact: true }).fill("github");
  await page.getByRole("button", { name: "Create token" }).click();
  const ciSecret = (await page.locator("#ci-secret").innerText()).trim();
  if (!ciSecret.startsWith("berth_ci_")) fail(`no CI token shown: ${JSON.stringify(ciSecret)}`);
  const copy = page.locator('button[data-copy="#ci-secret"]');
  await copy.click();
  await copy.getByText("Copied").waitFor();
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  if (copied !== ciSecret) fail("the copy button did not copy the token");
  await openDetails(page.locator('details[data-snippet="github-actions"]'));
  const github = page.locator("#snippet-github-actions");
  await github.waitFor();
  const snippet = await github.innerText();
  if (!snippet.includes(`${base}/api/v1/hooks/deploy`) || !snippet.includes("secrets.BERTH_TOKEN"))
    fail(`the GitHub Actions snippet does not post to the webhook with the secret:\n${snippet}`);
  if (snippet.includes(ciSecret)) fail("a snippet contains the token");
  await shot(page, "11-external-ci");
  await fitsNarrow(page, "the External CI page");
  // A reload (Post/Redirect/Get: no form is sent again) does not show it again.
  await page.reload();
  await page.getByText("shown only once").first().waitFor();
  if ((await page.content()).includes(ciSecret)) fail("the CI token was shown a second time");
  await page.locator('[data-ci-token="github"]').waitFor();

  // 8. Users and API tokens; the audit log.
  step("users, API tokens, audit log");
  await page.getByRole("link", { name: "Users & tokens" }).click();
  await page.locator('[data-user="admin"]').waitFor();
  await page.getByLabel("Name", { exact: true }).first().fill("browser");
  await page.getByRole("button", { name: "Create token" }).click();
  const apiSecret = (await page.locator("#api-secret").innerText()).trim();
  if (!apiSecret.startsWith("berth_pat_")) fail("no API token shown");
  await shot(page, "12-users-tokens");
  await fitsNarrow(page, "the users and tokens page");
  await page.getByRole("link", { name: "Audit log" }).click();
  await page.getByText(`POST /orgs/default/projects/${project}/components/${task}/runs`).first().waitFor();
  await shot(page, "13-audit");
  await fitsNarrow(page, "the audit log");

  // 9. CSRF: a page on another site posts a form to the console; a same-origin script posts
  // without the token. Both are refused.
  step("cross-site and token-less POSTs are refused");
  await page.route("http://evil.test/**", (route) =>
    route.fulfill({
      contentType: "text/html",
      body: `<!doctype html><form id="f" method="post" action="${base}/orgs/default/projects"><input name="name" value="pwned"></form><script>document.getElementById("f").submit()</script>`,
    }),
  );
  await page.goto("http://evil.test/");
  await page.waitForURL(`${base}/orgs/default/projects`);
  await page.getByText("came from another site (CSRF check failed)").waitFor();
  await page.goto(`${base}/orgs/default`);
  const forged = await page.evaluate(async (target) => {
    const r = await fetch(target, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: "name=pwned",
    });
    return r.status;
  }, `${base}/orgs/default/projects`);
  if (forged !== 403) fail(`a POST without the CSRF token answered ${forged}`);

  // A display name and a description with markup and attribute-breaking quotes are text.
  step("markup in names and descriptions stays text");
  await page.goto(`${base}/orgs/default/projects/${project}/new-component`);
  await page.getByLabel("Image URL", { exact: true }).fill(`${registryHost}/test/web:v2`);
  await page.getByLabel("Display name", { exact: true }).fill(xssName);
  await page.getByLabel("Unique name", { exact: true }).fill(`${component}-x`);
  await page.getByLabel("Description", { exact: true }).fill(xssDescription);
  await page.getByRole("button", { name: "Create component" }).click();
  await page.waitForURL(new RegExp(`/components/${component}-x\\?done=created$`));
  for (const tab of ["Deploy", "Runtime logs", "Configs & secrets", "DevOps: External CI"]) {
    await page.getByRole("link", { name: tab, exact: true }).click();
    const heading = await page.getByRole("heading", { level: 1 }).innerText();
    if (!heading.startsWith(xssName)) fail(`${tab}: heading ${JSON.stringify(heading)} is not the display name as text`);
    if ((await page.locator(".component-description").innerText()) !== xssDescription)
      fail(`${tab}: the description is not shown as text`);
    if ((await page.locator("[onmouseover]").count()) !== 0) fail(`${tab}: an injected attribute was rendered`);
    if ((await page.locator("main script, body > script:not([src])").count()) !== 0)
      fail(`${tab}: an injected <script> was rendered`);
    if ((await page.title()).indexOf(xssName) < 0 && tab === "Deploy") fail("the title does not show the name as text");
  }
  await page.goto(`${base}/orgs/default`);
  await page.getByRole("link", { name: xssName }).waitFor();

  // The overview shows the service ready; its URL answers.
  step("overview and the component's URL");
  await page.goto(`${base}/orgs/default`);
  await page
    .locator(`#project-${project} td[data-env="development"]`)
    .first()
    .getByText("ready", { exact: true })
    .waitFor();
  await shot(page, "00-overview");
  await fitsNarrow(page, "the overview");
  const response = await page.goto(url);
  const body = (await page.locator("body").innerText()).trim();
  if (!response || response.status() !== 200 || body !== "hello from v1")
    fail(`${url} answered ${response?.status()}: ${JSON.stringify(body)}`);

  // 10. Sign out ends the session.
  step("sign out");
  await page.goto(`${base}/orgs/default`);
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(/\/login$/);
  await page.goto(`${base}/orgs/default`);
  if (!page.url().includes("/login")) fail("still signed in after signing out");

  // Expected: the refused token (401), the refused forms (422), the refused endpoints file
  // (422), the cross-site and token-less POSTs (403), and the browser's favicon request to the
  // component itself (which has none).
  const expected = [
    `HTTP 401 POST ${base}/login`,
    `HTTP 422 POST ${base}/orgs/default/projects/${project}/components`,
    `HTTP 422 POST ${componentUrl}/deploy`,
    `HTTP 422 POST ${componentUrl}/endpoints`,
    `HTTP 403 POST ${base}/orgs/default/projects`,
    `HTTP 404 GET ${new URL(url).origin}/favicon.ico`,
  ];
  const unexpected = problems.filter((p) => !expected.includes(p));
  if (unexpected.length) fail(`the browser reported problems:\n${unexpected.join("\n")}`);
  console.log(
    `RESULT ${JSON.stringify({ url, prodUrl, events: events.length, tags, ciSecret, apiSecret, execution: executionUrl.split("/").pop() })}`,
  );
} catch (e) {
  console.error(`[browser] FAILED: ${e.stack || e}`);
  if (problems.length) console.error(`[browser] page problems:\n${problems.join("\n")}`);
  exitCode = 1;
} finally {
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
process.exit(exitCode);
