// Drives the berth console in Debian's headless Chromium, as a person would: sign in, add a
// basic-auth registry and test it, create a component with the live image preview, deploy it
// from the component page and wait until the page shows `ready`, promote it, then open its URL.
//
// Usage: node console.mjs <console-url> <api-token>
// Environment (set by crates/berth/tests/console.rs):
//   BERTH_CONSOLE_PROJECT      project to create the component in (exists already)
//   BERTH_CONSOLE_COMPONENT    unique name of the component to create
//   BERTH_TEST_REGISTRY        host:port of the basic-auth test registry
//   BERTH_TEST_USER / BERTH_TEST_PASSWORD   its credentials
//   BERTH_CONSOLE_XSS          a project description that must show as text (optional)
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
const registryHost = need("BERTH_TEST_REGISTRY");
const registryUser = need("BERTH_TEST_USER");
const registryPassword = need("BERTH_TEST_PASSWORD");
const xss = process.env.BERTH_CONSOLE_XSS;
const shots = process.env.BERTH_CONSOLE_SCREENSHOTS;
if (shots) mkdirSync(shots, { recursive: true });

const step = (what) => console.error(`[browser] ${what}`);
const fail = (why) => {
  throw new Error(why);
};
async function shot(page, name) {
  if (shots) await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
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
  viewport: { width: 1280, height: 900 },
});

// Anything the page complains about is a finding: CSP violations, script errors, dialogs
// (an injected alert()).
const problems = [];
let exitCode = 0;
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
  await page.getByLabel("API token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(/\/orgs\/default$/);
  await page.getByRole("heading", { level: 1, name: /Default/ }).waitFor();

  // 2. User content shows as text, never as markup.
  if (xss) {
    step("escaping");
    const shown = await page.locator(".project-description", { hasText: xss }).count();
    if (shown !== 1) fail(`the description ${JSON.stringify(xss)} is not shown as text`);
    if ((await page.locator("img[src='x']").count()) !== 0) fail("an injected <img> was rendered");
  }

  // 3. Settings → Container Registries: add a basic-auth registry, then test it.
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

  // 4. Create a component; the preview parses the image URL as you type.
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
  await page.getByLabel("Display name", { exact: true }).fill("Web <b>front</b>");
  await page.getByLabel("Unique name", { exact: true }).fill("Bad Name");
  await page.getByLabel("Container port (optional)").fill("8080");
  await page.getByRole("button", { name: "Create component" }).click();
  // Errors come back next to the field, with what was typed kept.
  await page.locator("#name-error").getByText("must start with a lowercase letter").waitFor();
  if ((await page.getByLabel("Image URL", { exact: true }).inputValue()) !== `${registryHost}/test/web:v1`)
    fail("the image URL was not kept after an error");
  await page.getByLabel("Unique name", { exact: true }).fill(component);
  await page.getByLabel("Description", { exact: true }).fill("Created by the browser test");
  await shot(page, "03-create-component");
  await page.getByRole("button", { name: "Create component" }).click();
  await page.waitForURL(new RegExp(`/components/${component}\\?done=created$`));
  await page.getByRole("heading", { level: 1, name: /Web <b>front<\/b>/ }).waitFor();

  // 5. Deploy from the Build Area: Update Image Tag lists the registry's tags.
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
  // The page polls (htmx) until the deployment is final.
  await dev.locator('[data-testid="status"]').getByText("ready", { exact: true }).waitFor({ timeout: 150_000 });
  const events = await page.locator(".events li").allInnerTexts();
  if (events.length === 0) fail("no deployment events shown");
  const url = await dev.locator("a.env-url").getAttribute("href");
  if (!url) fail("no URL shown for development");

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
  await page.setViewportSize({ width: 375, height: 800 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (overflow > 1) fail(`the component page is ${overflow}px wider than a 375px screen`);
  await shot(page, "05-component-narrow");
  await page.setViewportSize({ width: 1280, height: 900 });

  // 6. The overview shows it ready too, and its URL answers.
  step("overview and the component's URL");
  await page.getByRole("link", { name: "Overview" }).click();
  await page
    .locator(`#project-${project} td[data-env="development"]`)
    .getByText("ready", { exact: true })
    .waitFor();
  await shot(page, "00-overview");
  const response = await page.goto(url);
  const body = (await page.locator("body").innerText()).trim();
  if (!response || response.status() !== 200 || body !== "hello from v1")
    fail(`${url} answered ${response?.status()}: ${JSON.stringify(body)}`);

  // 7. Sign out ends the session.
  step("sign out");
  await page.goto(`${base}/orgs/default`);
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(/\/login$/);
  await page.goto(`${base}/orgs/default`);
  if (!page.url().includes("/login")) fail("still signed in after signing out");

  // Expected: the refused token (401) and the refused form (422) above, and the browser's
  // favicon request to the component itself (which has none).
  const expected = [
    `HTTP 401 POST ${base}/login`,
    `HTTP 422 POST ${base}/orgs/default/projects/${project}/components`,
    `HTTP 422 POST ${base}/orgs/default/projects/${project}/components/${component}/deploy`,
    `HTTP 404 GET ${new URL(url).origin}/favicon.ico`,
  ];
  const unexpected = problems.filter((p) => !expected.includes(p));
  if (unexpected.length) fail(`the browser reported problems:\n${unexpected.join("\n")}`);
  console.log(`RESULT ${JSON.stringify({ url, prodUrl, events: events.length, tags })}`);
} catch (e) {
  console.error(`[browser] FAILED: ${e.stack || e}`);
  if (problems.length) console.error(`[browser] page problems:\n${problems.join("\n")}`);
  exitCode = 1;
} finally {
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
process.exit(exitCode);
