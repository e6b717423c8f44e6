//! Reading a step's result by column name and row, whatever integer, float or string
//! encoding the query produced: values are cast once per column to one type.

use std::cell::RefCell;
use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray};
use arrow::compute::{cast, concat};
use arrow::datatypes::DataType;

use crate::detect::tables::Table;
use crate::error::{Error, Result};

/// A table's columns, each concatenated into one array, by name.
pub(crate) struct Rows {
    columns: HashMap<String, ArrayRef>,
    /// Columns cast to another type, by name and type: each is cast once, not per value.
    cast: RefCell<HashMap<(String, DataType), Option<ArrayRef>>>,
    len: usize,
}

impl Rows {
    pub fn of(table: &Table) -> Result<Self> {
        let error = |source| Error::Arrow {
            location: "report".to_string(),
            source,
        };
        let mut columns = HashMap::new();
        for (i, field) in table.schema.fields().iter().enumerate() {
            let parts: Vec<&dyn Array> =
                table.batches.iter().map(|b| b.column(i).as_ref()).collect();
            let array = match parts.is_empty() {
                true => arrow::array::new_empty_array(field.data_type()),
                false => concat(&parts).map_err(error)?,
            };
            columns.insert(field.name().clone(), array);
        }
        Ok(Rows {
            columns,
            cast: RefCell::new(HashMap::new()),
            len: table.rows(),
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    fn cast(&self, name: &str, to: &DataType) -> Option<ArrayRef> {
        let column = self.columns.get(name)?;
        if column.data_type() == to {
            return Some(column.clone());
        }
        self.cast
            .borrow_mut()
            .entry((name.to_string(), to.clone()))
            .or_insert_with(|| cast(column, to).ok())
            .clone()
    }

    pub fn string(&self, row: usize, name: &str) -> Option<String> {
        let column = self.cast(name, &DataType::Utf8)?;
        let array = column.as_any().downcast_ref::<StringArray>()?;
        (row < array.len() && array.is_valid(row)).then(|| array.value(row).to_string())
    }

    pub fn i64(&self, row: usize, name: &str) -> Option<i64> {
        let column = self.cast(name, &DataType::Int64)?;
        let array = column.as_any().downcast_ref::<Int64Array>()?;
        (row < array.len() && array.is_valid(row)).then(|| array.value(row))
    }

    pub fn f64(&self, row: usize, name: &str) -> Option<f64> {
        let column = self.cast(name, &DataType::Float64)?;
        let array = column.as_any().downcast_ref::<Float64Array>()?;
        (row < array.len() && array.is_valid(row)).then(|| array.value(row))
    }

    pub fn bool(&self, row: usize, name: &str) -> Option<bool> {
        let column = self.cast(name, &DataType::Boolean)?;
        let array = column.as_any().downcast_ref::<BooleanArray>()?;
        (row < array.len() && array.is_valid(row)).then(|| array.value(row))
    }
}
