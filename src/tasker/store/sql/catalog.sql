-- name: catalog_schema_comment
-- The schema's own description: the intro paragraph of the schema document.
SELECT obj_description(n.oid, 'pg_namespace') AS description
FROM pg_namespace n
WHERE n.nspname = %(schema)s;

-- name: catalog_tables
-- Base tables of a schema in creation order, with their COMMENT ON TABLE descriptions.
SELECT c.relname AS table_name, obj_description(c.oid, 'pg_class') AS description
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relkind = 'r'
ORDER BY c.oid;

-- name: catalog_columns
-- Columns in declaration order with their rendered types and whether they belong to the primary key
-- or to a foreign key.
SELECT c.relname AS table_name,
       a.attname AS column_name,
       a.attnum AS position,
       format_type(a.atttypid, a.atttypmod) AS data_type,
       t.typtype AS type_kind,
       EXISTS (SELECT 1 FROM pg_constraint k
               WHERE k.conrelid = c.oid AND k.contype = 'p' AND a.attnum = ANY (k.conkey)) AS is_primary_key,
       EXISTS (SELECT 1 FROM pg_constraint k
               WHERE k.conrelid = c.oid AND k.contype = 'f' AND a.attnum = ANY (k.conkey)) AS is_foreign_key
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
WHERE n.nspname = %(schema)s AND c.relkind = 'r'
ORDER BY c.oid, a.attnum;

-- name: catalog_foreign_keys
-- Single-column foreign keys between tables of a schema: source table and column, target table and column.
SELECT src.relname AS source_table,
       sa.attname AS source_column,
       dst.relname AS target_table,
       da.attname AS target_column
FROM pg_constraint k
JOIN pg_class src ON src.oid = k.conrelid
JOIN pg_class dst ON dst.oid = k.confrelid
JOIN pg_namespace n ON n.oid = src.relnamespace
JOIN pg_attribute sa ON sa.attrelid = k.conrelid AND sa.attnum = k.conkey[1]
JOIN pg_attribute da ON da.attrelid = k.confrelid AND da.attnum = k.confkey[1]
WHERE n.nspname = %(schema)s AND k.contype = 'f'
ORDER BY src.oid, sa.attnum;
