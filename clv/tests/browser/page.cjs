// Drives a real browser (Debian's chromium, headless) through the scorer's web page, as a marketing
// analyst would: the ranked list shows the top customer, searching an ID (typed, then Enter) opens
// that customer, the at-risk list loads, the overview has its charts; no console errors; basic
// accessibility (a language, labelled inputs, charts with text alternatives, keyboard focus).
//
//   node page.cjs <base URL> <expected top customer ID> <an ID to search> <screenshot folder>
//
// Prints "ok" and exits 0, or prints what failed and exits 1. Run by clv/tests/demo.rs; playwright-core
// comes from $CLV_PLAYWRIGHT (scripts/setup.sh installs it with this folder's lock file).
'use strict';

const path = require('path');
const { chromium } = require(process.env.CLV_PLAYWRIGHT || 'playwright-core');

const [base, topId, searchId, shots] = process.argv.slice(2);
if (!base || !topId || !searchId || !shots) {
  console.error('usage: node page.cjs <base URL> <top ID> <ID to search> <screenshot folder>');
  process.exit(2);
}

function check(condition, what) {
  if (!condition) {
    throw new Error(what);
  }
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CLV_CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  const problems = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    page.on('console', (message) => {
      if (message.type() === 'error') {
        problems.push(`console: ${message.text()} (${message.location().url || 'no url'})`);
      }
    });
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('requestfailed', (request) => problems.push(`request failed: ${request.url()}`));
    // Nothing may come from elsewhere: the page works offline.
    page.on('request', (request) => {
      if (!request.url().startsWith(base)) problems.push(`fetched from elsewhere: ${request.url()}`);
    });

    // The overview: the model card, the charts with their text alternatives.
    let response = await page.goto(`${base}/`);
    check(response.status() === 200, `/ answered ${response.status()}`);
    check((await page.getAttribute('html', 'lang')) === 'en', 'the page has no language');
    const charts = await page.$$eval('svg', (svgs) =>
      svgs.map((s) => [s.getAttribute('role'), s.getAttribute('aria-label')]));
    check(charts.length >= 2, `the overview has ${charts.length} charts`);
    check(charts.every(([role, label]) => role === 'img' && label), 'a chart without a text alternative');
    const card = await page.textContent('main');
    check(card.includes('BG/NBD + Gamma-Gamma') && card.includes('Champion'), 'no model card');
    await page.screenshot({ path: path.join(shots, 'overview.png'), fullPage: true });

    // The report is linked and served.
    const report = await page.getAttribute('a[href="/report.html"]', 'href');
    check(report, 'no link to the report');
    response = await page.goto(`${base}/report.html`);
    check(response.status() === 200, `/report.html answered ${response.status()}`);
    // The report names no icon: the browser asks for /favicon.ico, which is served.
    response = await page.goto(`${base}/favicon.ico`);
    check(response.status() === 200, `/favicon.ico answered ${response.status()}`);
    check(response.headers()['content-type'] === 'image/svg+xml', 'the icon is not an SVG');

    // The ranked list: the top customer first.
    await page.goto(`${base}/customers`);
    const first = (await page.textContent('table tbody tr:first-child td:nth-child(2)')).trim();
    check(first === topId, `the first customer is ${first}, the API's top is ${topId}`);
    await page.screenshot({ path: path.join(shots, 'customers.png'), fullPage: true });
    // Every input has a label.
    const unlabelled = await page.$$eval('input', (inputs) =>
      inputs.filter((i) => !document.querySelector(`label[for="${i.id}"]`)).length);
    check(unlabelled === 0, `${unlabelled} inputs without a label`);
    // The keyboard reaches the navigation first.
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(() => document.activeElement && document.activeElement.tagName);
    check(focused === 'A', `Tab focuses ${focused}, not the first link`);

    // Searching an ID, typed and submitted with Enter, opens that customer.
    await page.fill('#id', searchId);
    await Promise.all([page.waitForURL(`${base}/customers/${searchId}`), page.press('#id', 'Enter')]);
    const heading = (await page.textContent('h1')).trim();
    check(heading === `Customer ${searchId}`, `the search opened "${heading}"`);
    const clv = (await page.textContent('#clv')).trim();
    check(/^£[0-9,.]+$/.test(clv), `the forecast reads "${clv}"`);
    check(await page.$('svg[role="img"]'), "no chart of the customer's purchases");
    await page.screenshot({ path: path.join(shots, 'customer.png'), fullPage: true });

    // The at-risk list loads.
    response = await page.goto(`${base}/at-risk`);
    check(response.status() === 200, `/at-risk answered ${response.status()}`);
    const rows = await page.$$eval('table tbody tr', (r) => r.length);
    check(rows > 0, 'the at-risk list is empty');
    await page.screenshot({ path: path.join(shots, 'at-risk.png'), fullPage: true });

    // No problem so far: not one console error, failed request or page error.
    check(problems.length === 0, problems.join('\n'));

    // An unknown customer: a clear page, not an error in the browser.
    const unknown = `${base}/customers/999999999`;
    response = await page.goto(unknown);
    check(response.status() === 404, `an unknown customer answered ${response.status()}`);
    check((await page.textContent('main')).includes('no purchase'), 'no reason for the 404');
    // The browser may report that page's own 404 load, once, and nothing else.
    const own = `console: Failed to load resource: the server responded with a status of 404 (Not Found) (${unknown})`;
    const others = problems.filter((p) => p !== own);
    check(others.length === 0 && problems.length <= 1, problems.join('\n'));
    console.log('ok');
  } finally {
    await browser.close();
  }
})().catch((error) => {
  console.error(error.message);
  process.exit(1);
});
