"""
=====================================
Tabular streams cut by a column
=====================================

A tabular stream is a table whose tasks are the values (or quantile bins) of
one column. :func:`~skcl.datasets.split_by_column` cuts any table that way,
:func:`~skcl.datasets.train_test_split_stream` splits every task into train
and test parts in the same proportion (stratified by class), and
:func:`~skcl.datasets.load_wine_stream` is an embedded example: wines grouped
by alcohol content, low first. A scaler and a
:class:`~skcl.ContinualClassifier` learn the groups in a pipeline.
"""

# %%
# Cutting a table by a column
# ---------------------------
import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_wine
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skcl import ContinualClassifier
from skcl.datasets import load_wine_stream, split_by_column, train_test_split_stream
from skcl.metrics import AccuracyMatrixDisplay, accuracy_matrix, forgetting

torch.set_num_threads(1)

wine = load_wine(as_frame=True)
X, y, task = split_by_column(wine.data, wine.target, "alcohol", n_bins=3)
print("rows per task:", np.bincount(task), "- columns left:", X.shape[1])
X_train, X_test, y_train, y_test, t_train, t_test = train_test_split_stream(
    X, y, task, test_size=0.25, random_state=0
)
print("train / test rows:", len(y_train), len(y_test))

# %%
# The embedded wine stream, learned in a pipeline
# -----------------------------------------------
# ``load_wine_stream`` does the same cut and split in one call.
X_train, X_test, y_train, y_test, t_train, t_test = load_wine_stream(random_state=0)
pipe = make_pipeline(
    StandardScaler(),
    ContinualClassifier(lr=0.05, batch_size=8, max_epochs=20, random_state=0),
)
pipe.fit(X_train, y_train, continualclassifier__task_id=t_train)
R = accuracy_matrix(pipe, X_test, y_test, t_test)
print(f"forgetting {forgetting(R):.3f}")
AccuracyMatrixDisplay.from_matrix(R, task_labels=["low", "mid", "high"])
plt.title("Wine by alcohol content")
plt.show()
