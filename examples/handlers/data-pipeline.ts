/**
 * #7 `data_pipeline_ts/analytics_pipeline_ts` (reference C §6.1; `DataPipeline.*`): three parallel
 * extracts → three transforms → aggregate_metrics (all three) → generate_insights. Functional handlers.
 *
 * The extracts return fixed sample data (the reference simulates its sources too), so every figure
 * downstream is predictable: revenue 1 250.00 over 5 orders, 1 610 units on hand with 2 below their
 * reorder point, 4 customers worth 10 800.00.
 */
import type { JsonObject, JsonValue } from '@tasker/core';
import { defineHandler } from '@tasker/worker';
import {
  fromCents,
  isObject,
  requireArray,
  requireNumber,
  requireObject,
  requireString,
  toCents,
} from './support.ts';

const SALES: readonly JsonObject[] = [
  { order_id: 'ORD-001', date: '2024-01-01', product_id: 'PROD-A', quantity: 5, amount: 250 },
  { order_id: 'ORD-002', date: '2024-01-01', product_id: 'PROD-B', quantity: 3, amount: 150 },
  { order_id: 'ORD-003', date: '2024-01-02', product_id: 'PROD-A', quantity: 8, amount: 400 },
  { order_id: 'ORD-004', date: '2024-01-02', product_id: 'PROD-C', quantity: 2, amount: 100 },
  { order_id: 'ORD-005', date: '2024-01-03', product_id: 'PROD-B', quantity: 7, amount: 350 },
];

const INVENTORY: readonly JsonObject[] = [
  { product_id: 'PROD-A', warehouse: 'WH-01', quantity_on_hand: 150, reorder_point: 50 },
  { product_id: 'PROD-B', warehouse: 'WH-01', quantity_on_hand: 40, reorder_point: 60 },
  { product_id: 'PROD-C', warehouse: 'WH-02', quantity_on_hand: 1400, reorder_point: 200 },
  { product_id: 'PROD-A', warehouse: 'WH-02', quantity_on_hand: 20, reorder_point: 25 },
];

const CUSTOMERS: readonly JsonObject[] = [
  { customer_id: 'CUST-001', name: 'Alice', tier: 'gold', lifetime_value: 5000 },
  { customer_id: 'CUST-002', name: 'Bob', tier: 'silver', lifetime_value: 2500 },
  { customer_id: 'CUST-003', name: 'Carol', tier: 'gold', lifetime_value: 3000 },
  { customer_id: 'CUST-004', name: 'Dave', tier: 'bronze', lifetime_value: 300 },
];

/** The task's pipeline id and date range, echoed by the extracts (both optional in the schema). */
function sourceInfo(pipelineId: JsonValue | undefined, dateRange: JsonValue | undefined): JsonObject {
  const range = isObject(dateRange) ? dateRange : {};
  return {
    pipeline_id: typeof pipelineId === 'string' ? pipelineId : null,
    start_date: typeof range.start_date === 'string' ? range.start_date : null,
    end_date: typeof range.end_date === 'string' ? range.end_date : null,
  };
}

function addTo(totals: Record<string, number>, key: string, amount: number): void {
  totals[key] = (totals[key] ?? 0) + amount;
}

export const ExtractSalesDataHandler = defineHandler(
  'DataPipeline.StepHandlers.ExtractSalesDataHandler',
  { inputs: { pipelineId: 'pipeline_id', dateRange: 'date_range' } },
  ({ pipelineId, dateRange }) => ({
    source: 'sales_database',
    records: [...SALES],
    record_count: SALES.length,
    ...sourceInfo(pipelineId, dateRange),
  }),
);

export const ExtractInventoryDataHandler = defineHandler(
  'DataPipeline.StepHandlers.ExtractInventoryDataHandler',
  { inputs: { pipelineId: 'pipeline_id', dateRange: 'date_range' } },
  ({ pipelineId, dateRange }) => ({
    source: 'inventory_system',
    records: [...INVENTORY],
    record_count: INVENTORY.length,
    ...sourceInfo(pipelineId, dateRange),
  }),
);

export const ExtractCustomerDataHandler = defineHandler(
  'DataPipeline.StepHandlers.ExtractCustomerDataHandler',
  { inputs: { pipelineId: 'pipeline_id', dateRange: 'date_range' } },
  ({ pipelineId, dateRange }) => ({
    source: 'crm',
    records: [...CUSTOMERS],
    record_count: CUSTOMERS.length,
    ...sourceInfo(pipelineId, dateRange),
  }),
);

function records(extract: JsonValue | undefined, step: string): JsonObject[] {
  const result = requireObject(extract, step);
  return requireArray(result.records, `${step}.records`).map((row, i) => requireObject(row, `${step}[${i}]`));
}

export const TransformSalesHandler = defineHandler(
  'DataPipeline.StepHandlers.TransformSalesHandler',
  { depends: { extract: 'extract_sales_data' } },
  ({ extract }) => {
    const daily: Record<string, number> = {};
    const byProduct: Record<string, number> = {};
    let revenueCents = 0;
    const rows = records(extract, 'extract_sales_data');
    for (const row of rows) {
      const cents = toCents(requireNumber(row.amount, 'amount'));
      revenueCents += cents;
      addTo(daily, requireString(row.date, 'date'), cents);
      addTo(byProduct, requireString(row.product_id, 'product_id'), cents);
    }
    const toAmounts = (totals: Record<string, number>) =>
      Object.fromEntries(Object.entries(totals).map(([key, cents]) => [key, fromCents(cents)]));
    return {
      daily_sales: toAmounts(daily),
      product_sales: toAmounts(byProduct),
      total_revenue: fromCents(revenueCents),
      order_count: rows.length,
    };
  },
);

export const TransformInventoryHandler = defineHandler(
  'DataPipeline.StepHandlers.TransformInventoryHandler',
  { depends: { extract: 'extract_inventory_data' } },
  ({ extract }) => {
    const byWarehouse: Record<string, number> = {};
    const lowStock: string[] = [];
    let onHand = 0;
    for (const row of records(extract, 'extract_inventory_data')) {
      const quantity = requireNumber(row.quantity_on_hand, 'quantity_on_hand');
      const warehouse = requireString(row.warehouse, 'warehouse');
      onHand += quantity;
      addTo(byWarehouse, warehouse, quantity);
      if (quantity < requireNumber(row.reorder_point, 'reorder_point')) {
        lowStock.push(`${requireString(row.product_id, 'product_id')}@${warehouse}`);
      }
    }
    return {
      warehouse_totals: byWarehouse,
      total_quantity_on_hand: onHand,
      low_stock_alerts: lowStock,
      low_stock_count: lowStock.length,
    };
  },
);

export const TransformCustomersHandler = defineHandler(
  'DataPipeline.StepHandlers.TransformCustomersHandler',
  { depends: { extract: 'extract_customer_data' } },
  ({ extract }) => {
    const tiers: Record<string, number> = {};
    let valueCents = 0;
    const rows = records(extract, 'extract_customer_data');
    for (const row of rows) {
      addTo(tiers, requireString(row.tier, 'tier'), 1);
      valueCents += toCents(requireNumber(row.lifetime_value, 'lifetime_value'));
    }
    return {
      tier_breakdown: tiers,
      total_customers: rows.length,
      total_lifetime_value: fromCents(valueCents),
      average_lifetime_value: rows.length === 0 ? 0 : fromCents(Math.round(valueCents / rows.length)),
    };
  },
);

export const AggregateMetricsHandler = defineHandler(
  'DataPipeline.StepHandlers.AggregateMetricsHandler',
  {
    depends: { sales: 'transform_sales', inventory: 'transform_inventory', customers: 'transform_customers' },
  },
  ({ sales, inventory, customers }) => {
    const s = requireObject(sales, 'transform_sales');
    const i = requireObject(inventory, 'transform_inventory');
    const c = requireObject(customers, 'transform_customers');
    const revenue = requireNumber(s.total_revenue, 'total_revenue');
    const customerCount = requireNumber(c.total_customers, 'total_customers');
    return {
      total_revenue: revenue,
      total_orders: requireNumber(s.order_count, 'order_count'),
      total_inventory_quantity: requireNumber(i.total_quantity_on_hand, 'total_quantity_on_hand'),
      low_stock_count: requireNumber(i.low_stock_count, 'low_stock_count'),
      total_customers: customerCount,
      total_lifetime_value: requireNumber(c.total_lifetime_value, 'total_lifetime_value'),
      revenue_per_customer: customerCount === 0 ? 0 : fromCents(Math.round(toCents(revenue) / customerCount)),
      sources: ['transform_sales', 'transform_inventory', 'transform_customers'],
    };
  },
);

export const GenerateInsightsHandler = defineHandler(
  'DataPipeline.StepHandlers.GenerateInsightsHandler',
  { depends: { metrics: 'aggregate_metrics' } },
  ({ metrics }) => {
    const m = requireObject(metrics, 'aggregate_metrics');
    const lowStock = requireNumber(m.low_stock_count, 'low_stock_count');
    const revenuePerCustomer = requireNumber(m.revenue_per_customer, 'revenue_per_customer');
    const insights: JsonObject[] = [];
    if (lowStock > 0) {
      insights.push({
        category: 'inventory',
        finding: `${lowStock} stock positions below their reorder point`,
        recommendation: 'reorder',
      });
    }
    insights.push({
      category: 'customers',
      finding: `revenue per customer is ${revenuePerCustomer}`,
      recommendation: revenuePerCustomer < 500 ? 'run a retention campaign' : 'keep the current programme',
    });
    // A simple 0–100 score: start at 100, lose 10 per low-stock position, floor at 0.
    const healthScore = Math.max(0, 100 - lowStock * 10);
    return {
      insights,
      insight_count: insights.length,
      health_score: healthScore,
      health_rating: healthScore >= 80 ? 'good' : healthScore >= 50 ? 'fair' : 'poor',
    };
  },
);
