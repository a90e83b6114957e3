% rebase('layout', title='出站配送 Dispatch')
% if problem:
<p class="problem" id="problem">{{problem}}</p>
% end
% if result is not None:
<p id="result" class="ok verdict">放行 OUT · {{result['cylinder_id']}}</p>
% end
<form method="post" action="/dispatch/vehicle" id="vehicle">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <label>车牌 Vehicle plate <input name="plate" id="plate" required maxlength="12" value="{{vehicle['plate'] if vehicle else ''}}"></label>
  <label>送气员 Delivery person <input name="courier" id="courier" required maxlength="10" value="{{vehicle['courier'] if vehicle else ''}}"></label>
  <button id="set-vehicle">{{'换车 Change vehicle' if vehicle else '开始装车 Start loading'}}</button>
</form>
% if vehicle:
<form method="post" action="/dispatch" id="leaving">
  <input type="hidden" name="csrf" value="{{csrf}}">
  % include('scan', field='code', value='', placeholder='扫描出站气瓶 Scan each cylinder leaving')
  <button id="out">放行 Dispatch</button>
</form>
<h2>本车已装 On this vehicle: <span id="count">{{len(loaded)}}</span></h2>
<ul id="loaded">
% for row in loaded:
  <li>{{row['cylinder_id']}} <small>{{when(row['at'], False)}}</small></li>
% end
</ul>
% end
