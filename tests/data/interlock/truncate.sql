TRUNCATE il_rows;
