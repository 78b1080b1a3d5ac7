// The overview's "Energy today" tile: today's IT kWh, its cost and the running PUE, from the live
// energy accountant (GET /api/v1/energy/live, docs/ENERGY.md). "Today" is the site's local day.

import { ApiError, getJSON } from "./api.js";

const POLL_MS = 10_000;
const DASH = "—";
const TWO = { maximumFractionDigits: 2, minimumFractionDigits: 2 };
const two = new Intl.NumberFormat(undefined, TWO);

function money(value, currency) {
  if (typeof value !== "number") return DASH;
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(value);
  } catch {
    return `${value.toFixed(2)} ${currency}`; // a code the browser does not know
  }
}

export function renderEnergy(live) {
  const tile = document.getElementById("energy-today");
  if (!tile) return;
  tile.hidden = false;
  const number = (value, format) => (typeof value === "number" ? format.format(value) : DASH);
  document.getElementById("energy-kwh").textContent = `${number(live.it_kwh_today, two)} kWh`;
  document.getElementById("energy-cost").textContent = money(live.cost_today, live.currency);
  const pue = document.getElementById("energy-pue");
  pue.textContent = `PUE ${number(live.pue, two)}`;
  pue.title =
    live.pue_source === "measured"
      ? "Running PUE: today's facility energy over today's IT energy"
      : live.pue_source === "configured"
        ? "The configured PUE ([energy] pue)"
        : "No facility meter and no configured PUE";
  const facility = live.facility_cost_today;
  tile.title =
    typeof facility === "number"
      ? `IT energy since local midnight (${live.timezone}); with cooling and losses: ` +
        `${number(live.facility_kwh_today, two)} kWh, ${money(facility, live.currency)}`
      : `IT energy since local midnight (${live.timezone})`;
}

async function poll() {
  try {
    renderEnergy(await getJSON("/energy/live"));
  } catch (error) {
    if (error instanceof ApiError && error.status === 503) return; // no accountant: stay hidden
    console.warn("energy:", error.message);
  }
  setTimeout(poll, POLL_MS);
}

if (document.getElementById("energy-today")) poll();
